package io.timbre.account;

import org.jboss.resteasy.reactive.server.ServerRequestFilter;

import io.timbre.api.ApiProblem;
import io.vertx.core.http.HttpServerRequest;
import jakarta.ws.rs.HttpMethod;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.core.HttpHeaders;

/**
 * Authenticates every request under {@code /v1} with {@code Authorization: Bearer <key>}, in two steps: a
 * check of the header before routing, so that an unauthenticated client gets 401 whatever else is wrong
 * with its request; then the key's lookup, after routing, on a worker thread because it reads the database.
 */
public class ApiKeyFilter {

    private static final String BEARER = "bearer ";

    private final AdminKey adminKey;
    private final AuthRateLimiter limiter;
    private final UserService users;
    private final CurrentUser currentUser;

    ApiKeyFilter(AdminKey adminKey, AuthRateLimiter limiter, UserService users, CurrentUser currentUser) {
        this.adminKey = adminKey;
        this.limiter = limiter;
        this.users = users;
        this.currentUser = currentUser;
    }

    @ServerRequestFilter(preMatching = true)
    public void requireBearerHeader(ContainerRequestContext request) {
        if (needsKey(request)) {
            bearerKey(request);
        }
    }

    @ServerRequestFilter
    public void authenticate(ContainerRequestContext request, HttpServerRequest http) {
        if (!needsKey(request)) {
            return;
        }
        String client = http.remoteAddress() == null ? "unknown" : http.remoteAddress().hostAddress();
        limiter.retryAfterSeconds(client).ifPresent(seconds -> {
            throw new ApiProblem(429, "too-many-failed-authentications", "Too many failed authentications",
                    "This address sent too many invalid API keys; wait " + seconds + " s before trying again.")
                    .withHeader("Retry-After", Long.toString(seconds));
        });
        String key = bearerKey(request);
        if (adminKey.matches(key)) {
            currentUser.signInAdmin();
            return;
        }
        UserService.Principal principal = users.authenticate(key).orElseThrow(() -> {
            limiter.failed(client);
            return ApiProblem.unauthorized("The API key is not valid. Send the key you got when your user was "
                    + "created, as 'Authorization: Bearer tmb_...'.");
        });
        currentUser.signIn(principal.id(), principal.name());
    }

    /** Every {@code /v1} request but CORS preflights, which carry no credentials. */
    private static boolean needsKey(ContainerRequestContext request) {
        String path = request.getUriInfo().getPath();
        return (path.equals("/v1") || path.startsWith("/v1/")) && !HttpMethod.OPTIONS.equals(request.getMethod());
    }

    private static String bearerKey(ContainerRequestContext request) {
        String authorization = request.getHeaderString(HttpHeaders.AUTHORIZATION);
        if (authorization == null || authorization.isBlank()) {
            throw ApiProblem.unauthorized("This endpoint needs an API key: send 'Authorization: Bearer <key>'.");
        }
        String value = authorization.trim();
        if (value.length() <= BEARER.length() || !value.regionMatches(true, 0, BEARER, 0, BEARER.length())) {
            throw ApiProblem.unauthorized("The Authorization header must be 'Bearer <key>'.");
        }
        return value.substring(BEARER.length()).trim();
    }
}
