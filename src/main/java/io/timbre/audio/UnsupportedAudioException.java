package io.timbre.audio;

/** Uploaded audio in a container or codec that is not on the allow-list (415); the message names what is accepted. */
public class UnsupportedAudioException extends InvalidAudioException {

    public UnsupportedAudioException(String message) {
        super(message);
    }
}
