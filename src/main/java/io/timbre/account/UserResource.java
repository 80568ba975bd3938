package io.timbre.account;

import java.net.URI;
import java.time.Instant;

import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.resteasy.reactive.RestResponse;

import jakarta.validation.Valid;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.Pattern;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;

@Path("/v1/users")
@Consumes(MediaType.APPLICATION_JSON)
@Produces(MediaType.APPLICATION_JSON)
public class UserResource {

    public static final String NAME_PATTERN = "[A-Za-z0-9._-]{1,64}";
    public static final String NAME_RULE = "must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'";

    public record CreateUserRequest(@NotNull(message = NAME_RULE) @Pattern(regexp = NAME_PATTERN, message = NAME_RULE)
    String name) {
    }

    /** The only response that contains the API key. */
    public record CreatedUserResponse(long id, String name, String apiKey, Instant createdAt) {
    }

    private final UserService users;
    private final CurrentUser currentUser;

    UserResource(UserService users, CurrentUser currentUser) {
        this.users = users;
        this.currentUser = currentUser;
    }

    @POST
    @Operation(summary = "Create a user (admin key only)",
            description = "Returns the user's API key; it is shown only once.")
    public RestResponse<CreatedUserResponse> create(@Valid @NotNull(message = "must be a JSON object with a 'name'")
    CreateUserRequest request) {
        currentUser.requireAdmin();
        UserService.CreatedUser created = users.create(request.name());
        User user = created.user();
        return RestResponse.ResponseBuilder
                .<CreatedUserResponse>created(URI.create("/v1/users/" + user.id))
                .entity(new CreatedUserResponse(user.id, user.name, created.apiKey(), user.createdAt))
                .build();
    }
}
