package io.timbre.api;

import java.util.List;
import java.util.Locale;
import java.util.Optional;

import com.fasterxml.jackson.databind.ObjectMapper;

import io.timbre.account.AdminKey;
import io.timbre.account.ApiKeys;
import io.timbre.account.AuthRateLimiter;
import io.timbre.config.TimbreConfig;
import io.vertx.core.http.HttpHeaders;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;

/**
 * Keeps the service's internals ({@code /q/metrics}, {@code /q/openapi}, {@code /q/swagger-ui}) off the public port
 * unless asked: {@code timbre.http.internal-endpoints} is {@code key} (the default: they answer only
 * {@code Authorization: Bearer <admin key or timbre.http.metrics-key>}, anything else gets 401 problem+json and
 * counts as a failed authentication), {@code off} (404 on this port, whatever the key) or {@code open} (dev mode and
 * tests). Health ({@code /q/health/*}) is never gated: probes carry no key. Quarkus' management interface would move
 * these to another port, but it is fixed at build time and moves health with them.
 */
@ApplicationScoped
public class InternalEndpoints {

    /** Before the upload guard (-4) and every Quarkus route: a refused request's body is never read. */
    private static final int ORDER = -5;
    private static final List<String> GATED = List.of("/q/metrics", "/q/openapi", "/q/swagger-ui");
    private static final String BEARER = "bearer ";

    enum Mode { KEY, OFF, OPEN }

    private final ObjectMapper json;
    private final AdminKey adminKey;
    private final AuthRateLimiter limiter;
    private final Mode mode;
    private final Optional<String> metricsKey;

    InternalEndpoints(ObjectMapper json, AdminKey adminKey, AuthRateLimiter limiter, TimbreConfig config) {
        this.json = json;
        this.adminKey = adminKey;
        this.limiter = limiter;
        this.mode = parse(config.http().internalEndpoints());
        this.metricsKey = config.http().metricsKey().map(String::trim).filter(k -> !k.isEmpty());
        if (metricsKey.filter(k -> k.equals("REPLACE_ME") || k.length() < 16).isPresent()) {
            throw new IllegalStateException("timbre.http.metrics-key (TIMBRE_HTTP_METRICS_KEY) is the template's placeholder "
                    + "or shorter than 16 characters; generate one: openssl rand -base64 32");
        }
    }

    static Mode parse(String value) {
        try {
            return Mode.valueOf(value.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("timbre.http.internal-endpoints (TIMBRE_HTTP_INTERNAL_ENDPOINTS) must be key, off "
                    + "or open, not '" + value + "'");
        }
    }

    void install(@Observes Router router) {
        if (mode != Mode.OPEN) {
            router.route().order(ORDER).handler(this::guard);
        }
    }

    static boolean gated(String path) {
        if (path == null) {
            return false;
        }
        for (String prefix : GATED) {
            if (path.equals(prefix) || path.startsWith(prefix + "/") || path.startsWith(prefix + "?")) {
                return true;
            }
        }
        return false;
    }

    private void guard(RoutingContext ctx) {
        if (!gated(ctx.normalizedPath())) {
            ctx.next();
            return;
        }
        if (mode == Mode.OFF) {
            HttpProblemRoutes.send(json, ctx, "about:blank", 404, "Not Found", ctx.normalizedPath()
                    + " is not served on this port (timbre.http.internal-endpoints=off).");
            return;
        }
        String client = ctx.request().remoteAddress() == null ? "unknown" : ctx.request().remoteAddress().hostAddress();
        var wait = limiter.retryAfterSeconds(client);
        if (wait.isPresent()) {
            ctx.response().putHeader("Retry-After", Long.toString(wait.getAsLong()));
            HttpProblemRoutes.send(json, ctx, ApiProblem.TYPE_PREFIX + "too-many-failed-authentications", 429,
                    "Too many failed authentications", "This address sent too many invalid keys; wait "
                            + wait.getAsLong() + " s before trying again.");
            return;
        }
        String key = bearer(ctx.request().getHeader(HttpHeaders.AUTHORIZATION));
        if (key != null && (adminKey.matches(key) || metricsKey.map(k -> ApiKeys.secretEquals(key, k)).orElse(false))) {
            ctx.next();
            return;
        }
        if (key != null) {
            limiter.failed(client);
        }
        ctx.response().putHeader("WWW-Authenticate", "Bearer realm=\"timbre\"");
        HttpProblemRoutes.send(json, ctx, ApiProblem.TYPE_PREFIX + "unauthorized", 401, "Authentication required",
                ctx.normalizedPath() + " needs 'Authorization: Bearer <key>' with the admin key or timbre.http.metrics-key "
                        + "(timbre.http.internal-endpoints=key).");
    }

    private static String bearer(String authorization) {
        if (authorization == null) {
            return null;
        }
        String value = authorization.trim();
        if (value.length() <= BEARER.length() || !value.regionMatches(true, 0, BEARER, 0, BEARER.length())) {
            return null;
        }
        return value.substring(BEARER.length()).trim();
    }
}
