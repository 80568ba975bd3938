package io.timbre.api;

import java.sql.SQLException;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import org.jboss.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;

import io.timbre.audio.InvalidAudioException;
import jakarta.persistence.PersistenceException;
import jakarta.validation.ConstraintViolation;
import jakarta.validation.ConstraintViolationException;
import jakarta.validation.ElementKind;
import jakarta.validation.Path;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.Request;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.UriInfo;

/** Turns every exception that leaves a resource into an RFC 9457 {@code application/problem+json} response. */
public class ProblemMappers {

    private static final Logger LOG = Logger.getLogger(ProblemMappers.class);

    @jakarta.inject.Inject
    UploadGuard uploads;
    static final int DATABASE_RETRY_AFTER_SECONDS = 5;

    @ServerExceptionMapper
    public Response apiProblem(ApiProblem e, UriInfo uri) {
        Response.ResponseBuilder response = problem(e.type(), e.title(), e.status(), forUser(e.detail()), uri, null);
        e.headers().forEach(response::header);
        return response.build();
    }

    @ServerExceptionMapper
    public Response invalidAudio(InvalidAudioException e, UriInfo uri) {
        return problem(ApiProblem.TYPE_PREFIX + "invalid-audio", "Invalid audio", 422, e.getMessage(), uri, null)
                .build();
    }

    /** A synthesis stopped because its client went away (or the engine shut down): nobody reads this answer. */
    @ServerExceptionMapper
    public Response cancelled(io.timbre.engine.SynthesisJob.CancelledException e, UriInfo uri) {
        return problem(ApiProblem.TYPE_PREFIX + "cancelled", "Cancelled", 503, "The synthesis was cancelled; retry.", uri, null)
                .header("Retry-After", "1").build();
    }

    @ServerExceptionMapper
    public Response constraintViolation(ConstraintViolationException e, UriInfo uri) {
        List<Problem.FieldError> errors = e.getConstraintViolations().stream()
                .map(v -> new Problem.FieldError(fieldName(v), v.getMessage()))
                .sorted(Comparator.comparing(Problem.FieldError::field).thenComparing(Problem.FieldError::message))
                .toList();
        String detail = errors.size() == 1
                ? "Field '" + errors.get(0).field() + "' " + errors.get(0).message() + "."
                : errors.size() + " fields are invalid; see 'errors'.";
        return problem(ApiProblem.TYPE_PREFIX + "validation", "Invalid request", 400, detail, uri, errors).build();
    }

    @ServerExceptionMapper
    public Response webApplication(WebApplicationException e, UriInfo uri, HttpHeaders headers, Request request) {
        if (e.getCause() instanceof JsonProcessingException json) {
            return invalidJson(json, uri);
        }
        Response original = e.getResponse();
        int status = original.getStatus();
        Response.ResponseBuilder response = problem("about:blank", reason(status), status,
                webApplicationDetail(status, e, uri, headers, request), uri, null);
        for (Map.Entry<String, List<Object>> header : original.getHeaders().entrySet()) {
            if (!HttpHeaders.CONTENT_TYPE.equalsIgnoreCase(header.getKey())) {
                header.getValue().forEach(value -> response.header(header.getKey(), value));
            }
        }
        if (status >= 500) {
            LOG.error("Request failed with " + status, e);
        }
        return response.build();
    }

    @ServerExceptionMapper
    public Response mismatchedInput(MismatchedInputException e, UriInfo uri) {
        return invalidJson(e, uri);
    }

    @ServerExceptionMapper
    public Response jsonProcessing(JsonProcessingException e, UriInfo uri) {
        return invalidJson(e, uri);
    }

    @ServerExceptionMapper
    public Response persistence(PersistenceException e, UriInfo uri) {
        return unexpected(e, uri, null);
    }

    @ServerExceptionMapper
    public Response sql(SQLException e, UriInfo uri) {
        return unexpected(e, uri, null);
    }

    @ServerExceptionMapper
    public Response unexpected(Throwable e, UriInfo uri, io.vertx.ext.web.RoutingContext ctx) {
        if (ctx != null && uploads.overBodyLimit(ctx.request())) {
            // A chunked body that arrived whole before the size watch saw it: its parse failed on the oversized body.
            // Answered as the watch answers (413, then the connection closes), and logged as one line.
            LOG.infof("Request to %s over the body size limit: %s", uri.getPath(), e.toString());
            ctx.addEndHandler(done -> ctx.request().connection().close());
            return problem("about:blank", "Content too large", 413, uploads.bodyLimitDetail(), uri, null)
                    .header("Connection", "close").build();
        }
        if (DatabaseErrors.isUnavailable(e)) {
            LOG.warnf("Database unavailable for %s: %s", uri.getPath(), e);
            return problem(ApiProblem.TYPE_PREFIX + "database-unavailable", "Service unavailable", 503,
                    "The database is not reachable right now; retry in a few seconds.", uri, null)
                    .header("Retry-After", Integer.toString(DATABASE_RETRY_AFTER_SECONDS))
                    .build();
        }
        if (isClientGone(e)) {
            // The client closed the connection mid-upload: nobody reads this answer, and it is no server error.
            LOG.infof("The client closed the connection before its request to %s was read", uri.getPath());
            return problem(ApiProblem.TYPE_PREFIX + "client-closed", "Client closed the connection", 400,
                    "The connection was closed before the request body was complete.", uri, null).build();
        }
        if (isNulCharacter(e)) {
            return problem(ApiProblem.TYPE_PREFIX + "nul-character", "NUL character in text", 400,
                    "A text field contains a NUL character (U+0000); remove it and send the request again.", uri, null)
                    .build();
        }
        LOG.errorf(e, "Unexpected error for %s", uri.getPath());
        return problem(ApiProblem.TYPE_PREFIX + "internal", "Internal server error", 500,
                "The server failed to handle this request; the error is logged. Retry later or report it.", uri, null)
                .build();
    }

    /** A native library's own location: a source file of its build, with or without a line number. */
    private static final java.util.regex.Pattern NATIVE_SOURCE = java.util.regex.Pattern.compile(
            "\\s*\\(?\\s*(?:Exception raised from|from)?\\s*[^\\s()]*\\.(?:cc|cpp|cxx|cu|h|hpp)(?::\\d+)?\\)?");

    /**
     * A detail as a person should read it: LibTorch (and other native code) puts the source files of its build,
     * C++ frames and namespaces in its messages, which then ended up in answers. Those parts are cut and logged
     * at debug level under a reference that the answer gives instead.
     */
    static String forUser(String detail) {
        if (detail == null) {
            return null;
        }
        int raised = detail.indexOf("Exception raised from");
        String cleaned = raised >= 0 ? detail.substring(0, raised) : detail;
        int newline = cleaned.indexOf('\n');
        if (newline >= 0) {
            cleaned = cleaned.substring(0, newline);
        }
        cleaned = NATIVE_SOURCE.matcher(cleaned).replaceAll("").replace("c10::", "").replace("at::", "").strip();
        if (cleaned.equals(detail)) {
            return detail;
        }
        String reference = java.util.UUID.randomUUID().toString().substring(0, 8);
        LOG.debugf("problem %s, full detail: %s", reference, detail);
        return (cleaned.isEmpty() ? "The file or input could not be processed." : cleaned)
                + " (reference " + reference + " in the server log at debug level)";
    }

    /** Vert.x's {@code HttpClosedException} anywhere in the chain: the connection went away while it was read. */
    private static boolean isClientGone(Throwable e) {
        java.util.Set<Throwable> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Throwable t = e; t != null && seen.add(t); t = t.getCause()) {
            if (t instanceof io.vertx.core.http.HttpClosedException) {
                return true;
            }
        }
        return false;
    }

    /** PostgreSQL's "invalid byte sequence for encoding UTF8: 0x00" (SQLState 22021): a NUL no check caught. */
    private static boolean isNulCharacter(Throwable e) {
        for (Throwable t = e; t != null && t.getCause() != t; t = t.getCause()) {
            if (t instanceof SQLException sql && "22021".equals(sql.getSQLState())) {
                return true;
            }
        }
        return false;
    }

    private static Response invalidJson(JsonProcessingException e, UriInfo uri) {
        StringBuilder detail = new StringBuilder("The request body is not valid JSON for this endpoint");
        if (e instanceof JsonMappingException mapping && !mapping.getPath().isEmpty()) {
            detail.append(" at '").append(jsonPath(mapping.getPath())).append('\'');
        }
        JsonLocation location = e.getLocation();
        if (location != null && location.getLineNr() > 0) {
            detail.append(" (line ").append(location.getLineNr()).append(", column ").append(location.getColumnNr())
                    .append(')');
        }
        String reason = e.getOriginalMessage();
        if (reason != null && !reason.isBlank()) {
            detail.append(": ").append(firstLine(reason));
        }
        return problem(ApiProblem.TYPE_PREFIX + "invalid-json", "Malformed request body", 400, detail.toString(), uri,
                null).build();
    }

    static Response.ResponseBuilder problem(String type, String title, int status, String detail, UriInfo uri,
            List<Problem.FieldError> errors) {
        String instance = uri == null ? null : uri.getPath();
        return Response.status(status)
                .type(Problem.MEDIA_TYPE)
                .entity(new Problem(type, title, status, detail, instance, errors));
    }

    private static String webApplicationDetail(int status, WebApplicationException e, UriInfo uri, HttpHeaders headers,
            Request request) {
        String path = uri == null ? "this path" : uri.getPath();
        String message = e.getMessage();
        boolean generic = message == null || message.isBlank() || message.startsWith("HTTP " + status);
        return switch (status) {
            case 404 -> generic ? "Nothing exists at " + path + "; the API is described at /q/openapi." : message;
            case 405 -> "Method " + request.getMethod() + " is not allowed on " + path
                    + "; an OPTIONS request lists the allowed methods.";
            case 406 -> "This endpoint cannot produce the media type in your Accept header.";
            case 413 -> "The request body is too large.";
            case 415 -> "Content-Type '" + (headers == null || headers.getMediaType() == null ? "(none)"
                    : headers.getMediaType()) + "' is not accepted here; send application/json unless the API "
                    + "documentation says otherwise.";
            default -> generic ? reason(status) + "." : message;
        };
    }

    static String reason(int status) {
        Response.Status.Family family = Response.Status.Family.familyOf(status);
        Response.StatusType known = Response.Status.fromStatusCode(status);
        if (known != null) {
            return known.getReasonPhrase();
        }
        return family == Response.Status.Family.CLIENT_ERROR ? "Client error" : "Server error";
    }

    private static String fieldName(ConstraintViolation<?> violation) {
        // Path of a request-body violation: method, parameter, then the properties we want to show.
        StringBuilder field = new StringBuilder();
        String parameter = null;
        Iterator<Path.Node> nodes = violation.getPropertyPath().iterator();
        while (nodes.hasNext()) {
            Path.Node node = nodes.next();
            if (node.getKind() == ElementKind.PARAMETER) {
                parameter = node.getName();
            } else if (node.getKind() == ElementKind.PROPERTY || node.getKind() == ElementKind.CONTAINER_ELEMENT) {
                if (node.getName() == null) {
                    continue;
                }
                if (!field.isEmpty()) {
                    field.append('.');
                }
                field.append(node.getName());
                if (node.getIndex() != null) {
                    field.append('[').append(node.getIndex()).append(']');
                }
            }
        }
        if (!field.isEmpty()) {
            return field.toString();
        }
        return parameter != null ? parameter : violation.getPropertyPath().toString();
    }

    private static String jsonPath(List<JsonMappingException.Reference> path) {
        StringBuilder result = new StringBuilder();
        for (JsonMappingException.Reference reference : path) {
            if (reference.getFieldName() != null) {
                if (!result.isEmpty()) {
                    result.append('.');
                }
                result.append(reference.getFieldName());
            } else if (reference.getIndex() >= 0) {
                result.append('[').append(reference.getIndex()).append(']');
            }
        }
        return result.toString();
    }

    private static String firstLine(String text) {
        int newline = text.indexOf('\n');
        return newline < 0 ? text : text.substring(0, newline);
    }
}
