package io.timbre.audio;

/** Uploaded audio that cannot be used; the message says why, for the person who sent it (422). */
public class InvalidAudioException extends RuntimeException {

    public InvalidAudioException(String message) {
        super(message);
    }

    public InvalidAudioException(String message, Throwable cause) {
        super(message, cause);
    }
}
