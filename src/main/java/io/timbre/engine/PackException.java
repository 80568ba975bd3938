package io.timbre.engine;

/** A model pack that cannot be used: missing or altered file, wrong format, unknown device. */
public class PackException extends RuntimeException {
    public PackException(String message) {
        super(message);
    }

    public PackException(String message, Throwable cause) {
        super(message, cause);
    }
}
