package io.timbre.api;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An error that a client caused or can act on; the message is the problem's {@code detail} and must say
 * what to do. Thrown anywhere in request handling, it becomes an {@code application/problem+json} response
 * with its status (see {@link ProblemMappers}). Throwing it out of a {@code @Transactional} method rolls
 * the transaction back.
 */
public class ApiProblem extends RuntimeException {

    /** Prefix of the {@code type} URI of Timbre's own problem types; the slug follows it. */
    public static final String TYPE_PREFIX = "urn:timbre:problem:";

    private final int status;
    private final String slug;
    private final String title;
    private final Map<String, String> headers = new LinkedHashMap<>();

    /**
     * @param status the HTTP status
     * @param slug   stable identifier of the problem type, e.g. {@code speaker-not-found}; the type URI is
     *               {@link #TYPE_PREFIX} + slug
     * @param title  short, constant summary of the type, e.g. "Speaker not found"
     * @param detail this occurrence, for a person: what is wrong and how to fix it
     */
    public ApiProblem(int status, String slug, String title, String detail) {
        this(status, slug, title, detail, null);
    }

    public ApiProblem(int status, String slug, String title, String detail, Throwable cause) {
        // No stack trace: this is an expected outcome, not a bug; the cause keeps its own.
        super(detail, cause, false, false);
        this.status = status;
        this.slug = slug;
        this.title = title;
    }

    public static ApiProblem badRequest(String detail) {
        return new ApiProblem(400, "bad-request", "Bad request", detail);
    }

    public static ApiProblem unauthorized(String detail) {
        return new ApiProblem(401, "unauthorized", "Authentication required", detail)
                .withHeader("WWW-Authenticate", "Bearer realm=\"timbre\"");
    }

    public static ApiProblem forbidden(String detail) {
        return new ApiProblem(403, "forbidden", "Forbidden", detail);
    }

    public static ApiProblem notFound(String detail) {
        return new ApiProblem(404, "not-found", "Not found", detail);
    }

    public static ApiProblem conflict(String detail) {
        return new ApiProblem(409, "conflict", "Conflict", detail);
    }

    /** Well-formed but unusable input, e.g. audio that is not a WAV file. */
    public static ApiProblem unprocessable(String slug, String title, String detail) {
        return new ApiProblem(422, slug, title, detail);
    }

    public static ApiProblem serviceUnavailable(String slug, String title, String detail, int retryAfterSeconds) {
        return new ApiProblem(503, slug, title, detail).withHeader("Retry-After", Integer.toString(retryAfterSeconds));
    }

    /** Adds a response header (e.g. {@code Retry-After}); returns this. */
    public ApiProblem withHeader(String name, String value) {
        headers.put(name, value);
        return this;
    }

    public int status() {
        return status;
    }

    public String slug() {
        return slug;
    }

    public String type() {
        return TYPE_PREFIX + slug;
    }

    public String title() {
        return title;
    }

    public String detail() {
        return getMessage();
    }

    public Map<String, String> headers() {
        return Map.copyOf(headers);
    }
}
