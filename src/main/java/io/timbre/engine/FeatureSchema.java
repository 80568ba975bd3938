package io.timbre.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * What a speaker-feature entry may hold for one pack: speech ids below the LLM's speech vocabulary, text ids
 * below its text vocabulary, at most as many prompt tokens as the longest prompt gives (and the flow's noise
 * covers), and a bounded transcript. The mel and embedding sizes are CosyVoice 2's.
 */
public record FeatureSchema(int speechTokenSize, int textVocab, int maxSpeechTokens, int maxTextTokens) {
    public static final int MEL_BINS = 80;
    public static final int EMBEDDING_DIM = 192;
    /** Transcript tokens: 1000 characters at up to 4 byte-level tokens each. */
    public static final int MAX_TEXT_TOKENS = 4096;

    public static FeatureSchema of(ModelPack pack) {
        PackManifest m = pack.manifest;
        int tokensPerSecond = m.outputSampleRate() / m.samplesPerMelFrame() / 2;
        int longestPrompt = (int) Math.ceil(m.maxPromptSeconds() * tokensPerSecond);
        return new FeatureSchema(m.speechTokenSize(), textVocab(pack),
                Math.min(longestPrompt, m.noiseFrames() / 2 - 1), MAX_TEXT_TOKENS);
    }

    /** The LLM's text vocabulary from pack.json (llm.text_vocab_size, else text.vocab_size). */
    private static int textVocab(ModelPack pack) {
        try {
            JsonNode root = new ObjectMapper().readTree(pack.dir.resolve("pack.json").toFile());
            JsonNode n = root.path("llm").path("text_vocab_size");
            if (n.isMissingNode()) {
                n = root.path("text").path("vocab_size");
            }
            if (!n.canConvertToInt() || n.asInt() <= 0) {
                throw new PackException("model pack " + pack.dir + ": pack.json lacks llm.text_vocab_size");
            }
            return n.asInt();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
