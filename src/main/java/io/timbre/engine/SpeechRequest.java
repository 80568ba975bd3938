package io.timbre.engine;

import java.util.List;

/**
 * What the engine synthesizes: token ids only. Normalization, segmentation and tokenizing happen in front of the
 * engine (the service's text frontend); the engine never sees text.
 *
 * @param features the speaker; must stay open until the request's job is closed
 * @param segments each segment's text token ids, in order (at least one)
 * @param prompt   the LLM's prompt as the pack's {@link PromptPlan} made it (e.g. an instruction in place of the
 *                 transcript); null: the features' own prompt text and speech tokens
 */
public record SpeechRequest(SpeakerFeatures features, List<long[]> segments, PromptPlan.LlmPrompt prompt, Synthesizer.Options options) {
    public SpeechRequest {
        if (segments.isEmpty()) {
            throw new IllegalArgumentException("the text has nothing to speak (empty or only punctuation)");
        }
        segments = List.copyOf(segments);
    }

    public SpeechRequest(SpeakerFeatures features, List<long[]> segments, Synthesizer.Options options) {
        this(features, segments, null, options);
    }
}
