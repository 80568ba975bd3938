package io.timbre.engine;

/**
 * A feature file (or spk2info.pt) that cannot be read as CosyVoice 2 zero-shot speaker features; {@code tooLarge}
 * when it was refused for a size bound rather than for its content.
 */
public class FeatureFileException extends RuntimeException {
    private final boolean tooLarge;

    public FeatureFileException(String message) {
        this(message, false);
    }

    public FeatureFileException(String message, boolean tooLarge) {
        super(message);
        this.tooLarge = tooLarge;
    }

    public boolean tooLarge() {
        return tooLarge;
    }
}
