package io.timbre.api;

import java.util.Optional;

import org.eclipse.microprofile.config.inject.ConfigProperty;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

import io.quarkus.runtime.configuration.MemorySize;
import io.vertx.core.http.HttpHeaders;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;

/**
 * Problem responses for what is answered before any JAX-RS resource runs: a body over
 * {@code quarkus.http.limits.max-body-size} (Quarkus would send an empty 413) and a path that nothing
 * serves (Vert.x would send a text 404).
 */
@ApplicationScoped
public class HttpProblemRoutes {

    /** Just before Quarkus' own Content-Length check ({@code RouteConstants.ROUTE_ORDER_UPLOAD_LIMIT} = -2). */
    private static final int BODY_LIMIT_ORDER = -3;
    /** After every other route, static resources ({@code ROUTE_ORDER_DEFAULT} = 10 000) included. */
    private static final int NOT_FOUND_ORDER = Integer.MAX_VALUE - 1;

    private final ObjectMapper json;
    private final Optional<MemorySize> maxBodySize;

    HttpProblemRoutes(ObjectMapper json,
            @ConfigProperty(name = "quarkus.http.limits.max-body-size") Optional<MemorySize> maxBodySize) {
        this.json = json;
        this.maxBodySize = maxBodySize;
    }

    void install(@Observes Router router) {
        maxBodySize.ifPresent(limit -> router.route().order(BODY_LIMIT_ORDER)
                .handler(ctx -> rejectOversizedBody(ctx, limit.asLongValue()))
                .failureHandler(ctx -> oversizedWhileReading(ctx, limit.asLongValue())));
        router.route().order(NOT_FOUND_ORDER).handler(this::notFound);
    }

    private void rejectOversizedBody(RoutingContext ctx, long limit) {
        String length = ctx.request().getHeader(HttpHeaders.CONTENT_LENGTH);
        if (length != null && parseOrZero(length) > limit) {
            // The body is not read; closing the connection stops the client from sending the rest.
            sendAndClose(json, ctx, "about:blank", 413, "Content too large", "The request body is " + length
                    + " bytes; the limit is " + limit + " bytes (quarkus.http.limits.max-body-size).");
            return;
        }
        ctx.next();
    }

    /** A body without Content-Length (chunked) that grew over the limit while it was read. */
    private void oversizedWhileReading(RoutingContext ctx, long limit) {
        if (ctx.statusCode() != 413 || ctx.response().headWritten()) {
            ctx.next();
            return;
        }
        sendAndClose(json, ctx, "about:blank", 413, "Content too large", "The request body is over the limit of "
                + limit + " bytes (quarkus.http.limits.max-body-size).");
    }

    private void notFound(RoutingContext ctx) {
        send(ctx, 404, "Not Found",
                "Nothing exists at " + ctx.normalizedPath() + "; the API is described at /q/openapi.");
    }

    private void send(RoutingContext ctx, int status, String title, String detail) {
        send(json, ctx, "about:blank", status, title, detail);
    }

    /** Writes a problem+json answer from a Vert.x route (before any resource runs). */
    static void send(ObjectMapper json, RoutingContext ctx, String type, int status, String title, String detail) {
        Problem problem = new Problem(type, title, status, detail, ctx.normalizedPath(), null);
        String body;
        try {
            body = json.writeValueAsString(problem);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        ctx.response().setStatusCode(status)
                .putHeader(HttpHeaders.CONTENT_TYPE, Problem.MEDIA_TYPE)
                .end(body);
    }

    /**
     * As {@link #send}, then closes the connection: for answers given before the body was read, so that the
     * client stops sending it and the connection cannot be reused mid-body.
     */
    static void sendAndClose(ObjectMapper json, RoutingContext ctx, String type, int status, String title,
            String detail) {
        if (ctx.response().headWritten()) {
            ctx.request().connection().close();
            return;
        }
        ctx.response().putHeader(HttpHeaders.CONNECTION, "close");
        ctx.response().endHandler(ignored -> ctx.request().connection().close());
        send(json, ctx, type, status, title, detail);
    }

    private static long parseOrZero(String number) {
        try {
            return Long.parseLong(number.trim());
        } catch (NumberFormatException e) {
            return 0;
        }
    }
}
