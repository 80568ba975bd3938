package io.timbre.api;

import java.util.List;

import com.fasterxml.jackson.annotation.JsonInclude;

/**
 * An RFC 9457 problem details body, sent as {@code application/problem+json} for every API error.
 *
 * @param type     {@code about:blank} for plain HTTP errors, else {@code urn:timbre:problem:<slug>}
 * @param title    short summary of the problem type
 * @param status   the HTTP status code
 * @param detail   what went wrong in this request, written for the person who has to fix it
 * @param instance the request path
 * @param errors   per-field validation errors, only for validation problems
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record Problem(String type, String title, int status, String detail, String instance, List<FieldError> errors) {

    public static final String MEDIA_TYPE = "application/problem+json";

    /** One invalid field of a request: {@code field} is its JSON name (dotted for nested fields). */
    public record FieldError(String field, String message) {
    }
}
