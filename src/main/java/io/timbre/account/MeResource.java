package io.timbre.account;

import java.time.Instant;
import java.util.UUID;

import org.eclipse.microprofile.openapi.annotations.Operation;

import jakarta.validation.Valid;
import jakarta.validation.constraints.NotNull;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;

@Path("/v1/me")
@Produces(MediaType.APPLICATION_JSON)
public class MeResource {

    public record MeResponse(long id, String name, UUID currentSpeakerId, Instant createdAt) {
        static MeResponse of(User user) {
            return new MeResponse(user.id, user.name, user.currentSpeakerId, user.createdAt);
        }
    }

    public record SelectSpeakerRequest(@NotNull UUID speakerId) {
    }

    private final UserService users;
    private final CurrentUser currentUser;

    MeResource(UserService users, CurrentUser currentUser) {
        this.users = users;
        this.currentUser = currentUser;
    }

    @GET
    @Operation(summary = "The user of the API key")
    public MeResponse me() {
        return MeResponse.of(users.get(currentUser.requireUserId()));
    }

    @PUT
    @Path("/speaker")
    @Consumes(MediaType.APPLICATION_JSON)
    @Operation(summary = "Select the speaker used when a request names none")
    public MeResponse selectSpeaker(@Valid @NotNull(message = "must be a JSON object with a 'speakerId'")
    SelectSpeakerRequest request) {
        return MeResponse.of(users.setCurrentSpeaker(currentUser.requireUserId(), request.speakerId()));
    }

    @DELETE
    @Path("/speaker")
    @Operation(summary = "Clear the current speaker (zero-shot only)")
    public void clearSpeaker() {
        users.clearCurrentSpeaker(currentUser.requireUserId());
    }
}
