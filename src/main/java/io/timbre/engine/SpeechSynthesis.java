package io.timbre.engine;

import io.timbre.text.TextFrontend;

/**
 * What the synthesis side needs of the engine: the text frontend and tokenizer that sit in front of it, and the
 * engine itself, which takes token ids only ({@link SpeechRequest}). Implemented by the {@link Engine} bean.
 */
public interface SpeechSynthesis {
    /** Normalization and segmentation of the loaded pack (CosyVoice's text_normalize). */
    TextFrontend textFrontend();

    /** The pack tokenizer's ids of one segment. */
    long[] tokenize(String segment);

    /** How the loaded pack's LLM is prompted (its family, system prompt and instructions). */
    PromptPlan promptPlan();

    /** The loaded pack's name@version. */
    String packKey();

    /** Sample rate of the audio the engine produces. */
    int sampleRate();

    /**
     * Queues a request; the caller owns the returned job and closes it.
     *
     * @throws Synthesizer.Busy when the engine's queue is full
     */
    SynthesisJob submit(SpeechRequest request);
}
