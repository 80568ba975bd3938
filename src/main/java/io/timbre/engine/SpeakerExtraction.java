package io.timbre.engine;

/**
 * What the speaker side needs of the engine: speaker features from a recording or a feature file, what they may
 * hold, and which pack makes them. Implemented by the {@link Engine} bean.
 */
public interface SpeakerExtraction {
    /** Speaker features of a prompt recording (mono, any rate) with its transcript as the pack's family prompts it. */
    SpeakerFeatures extract(float[] pcm, int sampleRate, String promptText);

    /** Reads a feature file onto the engine's device (restricted reader, checked against the pack's schema). */
    SpeakerFeatures readFeatures(byte[] file);

    /** What speaker features may hold for the loaded pack. */
    FeatureSchema featureSchema();

    /** How the loaded pack's LLM is prompted (its family, system prompt and instructions). */
    PromptPlan promptPlan();

    /** The loaded pack's manifest (prompt limits, name and version). */
    PackManifest manifest();

    /** Where the loaded pack runs: imported features are put there. */
    org.bytedeco.pytorch.Device torchDevice();

    /** The loaded pack's name@version. */
    String packKey();
}
