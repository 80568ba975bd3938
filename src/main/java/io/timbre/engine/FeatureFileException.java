package io.timbre.engine;

/** A feature file (or spk2info.pt) that cannot be read as CosyVoice 2 zero-shot speaker features. */
public class FeatureFileException extends RuntimeException {
    public FeatureFileException(String message) {
        super(message);
    }
}
