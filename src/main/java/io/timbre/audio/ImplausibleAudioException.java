package io.timbre.audio;

/**
 * Audio that decodes but cannot be a voice recording (422): silent, constant, clipped throughout, with NaN/Inf
 * samples, or an implausible sample rate. {@link #kind()} is the problem type's slug.
 */
public class ImplausibleAudioException extends InvalidAudioException {
    private final String kind;
    private final String title;

    public ImplausibleAudioException(String kind, String title, String message) {
        super(message);
        this.kind = kind;
        this.title = title;
    }

    /** e.g. {@code audio-silent}; the problem type is {@code urn:timbre:problem:} + this. */
    public String kind() {
        return kind;
    }

    public String title() {
        return title;
    }
}
