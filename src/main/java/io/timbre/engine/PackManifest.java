package io.timbre.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The parts of pack.json (format {@value #FORMAT}) the engine needs; see models/README.md. */
public record PackManifest(
        String name, String version, String size,
        int promptSampleRate, int outputSampleRate, double minPromptSeconds, double maxPromptSeconds,
        int samplesPerMelFrame,
        int tokenMaxN, int tokenMinN, int mergeLen,
        int speechTokenSize, int vocabSize, int[] stopTokens, Sampling sampling,
        int flowSteps, double cfgRate, int noiseFrames,
        Map<String, FileEntry> files, Map<String, String> moduleFiles,
        String speakerEncoder, String speechTokenizer, String family, int[] silentTokens, int maxSilentRun,
        int sourceHarmonics, Streaming streaming, boolean flowPaddingInvariant) {

    /** Model families a pack can declare (pack.json "family"); a pack without the key is CosyVoice 2 (packs written
     * before CosyVoice 3 support). The family decides what the pack's modules expect, not the service layer. */
    public static final List<String> FAMILIES = List.of("cosyvoice2", "cosyvoice3");

    /** Version 2: the speaker encoder and the speech tokenizer are the release's ONNX files (frontend.speaker_encoder,
     * frontend.speech_tokenizer), frontend.pt keeps only the DSP. */
    public static final String FORMAT = "timbre-pack/2";

    public record FileEntry(String sha256, long bytes) {
    }

    /**
     * pack.json {@code streaming}: the flow's chunk sizes (encoder in tokens, estimator in mel frames) and
     * CosyVoice2Model's hop constants (token_hop_len, growth to max_token_hop_len by hop_scale_factor,
     * pre_lookahead_len, HiFT's mel and source cache), and how the vocoder streams ({@code vocoder_cache}).
     */
    public record Streaming(int tokenHopLen, int maxTokenHopLen, int hopScaleFactor, int preLookaheadLen,
                            int encoderChunk, int estimatorChunk, int melCacheFrames, int sourceCacheSamples,
                            VocoderCache vocoderCache) {
    }

    /** pack.json {@code streaming.vocoder_cache}: how the vocoder carries state from hop to hop. */
    public enum VocoderCache {
        /** CosyVoice2Model.token2wav: HiFT keeps the last mel frames and source samples of a hop and cross-fades the
         * seam (vocode with cache_source); the default of packs that do not say. */
        CROSSFADE("crossfade"),
        /** CosyVoice3Model.token2wav: a causal vocoder re-runs over all the mel so far
         * ({@code vocode_streaming(mel, finalize)}) and the new samples are those past the ones already emitted. */
        RERUN("rerun");

        public final String id;

        VocoderCache(String id) {
            this.id = id;
        }

        static VocoderCache parse(String value, Path dir) {
            for (VocoderCache c : values()) {
                if (c.id.equals(value)) {
                    return c;
                }
            }
            throw new PackException("model pack " + dir + ": pack.json streaming.vocoder_cache '" + value
                    + "' is not supported (this build knows crossfade, rerun)");
        }
    }

    /** CosyVoice's ras_sampling parameters and the min/max speech-token lengths per text token. */
    public record Sampling(double topP, int topK, int winSize, double tauR, double minTokenTextRatio,
                           double maxTokenTextRatio) {
    }

    public static PackManifest read(Path dir) {
        Path file = dir.resolve("pack.json");
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw new PackException("model pack " + dir + ": pack.json is missing (is TIMBRE_MODEL_PACK a pack directory?)");
        } catch (IOException e) {
            throw new PackException("model pack " + dir + ": pack.json is not readable JSON: " + e.getMessage(), e);
        }
        String format = root.path("format").asText("");
        if (!FORMAT.equals(format)) {
            throw new PackException("model pack " + dir + ": format '" + format + "' is not supported (this build reads " + FORMAT + ")");
        }
        JsonNode audio = need(root, "audio", dir);
        JsonNode text = need(root, "text", dir);
        JsonNode llm = need(root, "llm", dir);
        JsonNode s = need(llm, "sampling", dir);
        JsonNode flow = need(root, "flow", dir);
        Map<String, FileEntry> files = new LinkedHashMap<>();
        need(root, "files", dir).fields().forEachRemaining(e ->
                files.put(e.getKey(), new FileEntry(e.getValue().path("sha256").asText(), e.getValue().path("bytes").asLong())));
        Map<String, String> modules = new LinkedHashMap<>();
        for (String part : List.of("frontend", "llm", "flow", "vocoder")) {
            modules.put(part, need(need(root, part, dir), "file", dir).asText());
        }
        modules.put("tokenizer", need(text, "tokenizer", dir).asText());
        JsonNode frontend = need(root, "frontend", dir);
        String speakerEncoder = need(frontend, "speaker_encoder", dir).asText();
        String speechTokenizer = need(frontend, "speech_tokenizer", dir).asText();
        for (String onnx : List.of(speakerEncoder, speechTokenizer)) {
            if (onnx.isEmpty() || onnx.contains("/") || onnx.contains("\\") || onnx.startsWith(".")) {
                throw new PackException("model pack " + dir + ": frontend names ONNX file '" + onnx + "', not a plain file name");
            }
        }
        modules.put("speaker_encoder", speakerEncoder);
        modules.put("speech_tokenizer", speechTokenizer);
        String family = root.path("family").asText("cosyvoice2");
        if (!FAMILIES.contains(family)) {
            throw new PackException("model pack " + dir + ": pack.json family '" + family + "' is not supported (this build serves "
                    + String.join(", ", FAMILIES) + ")");
        }
        List<Integer> stops = new ArrayList<>();
        need(llm, "stop_tokens", dir).forEach(n -> stops.add(n.asInt()));
        // CosyVoice 3 (CosyVoice3Model.silent_tokens): runs of these tokens longer than max_silent_run are cut
        List<Integer> silent = new ArrayList<>();
        llm.path("silent_tokens").forEach(n -> silent.add(n.asInt()));
        return new PackManifest(
                root.path("name").asText(dir.getFileName().toString()), root.path("version").asText("0"),
                root.path("size").asText(""),
                need(audio, "prompt_sample_rate", dir).asInt(), need(audio, "output_sample_rate", dir).asInt(),
                audio.path("min_prompt_seconds").asDouble(3.0), audio.path("max_prompt_seconds").asDouble(30.0),
                need(audio, "samples_per_mel_frame", dir).asInt(),
                text.path("token_max_n").asInt(80), text.path("token_min_n").asInt(60), text.path("merge_len").asInt(20),
                need(llm, "speech_token_size", dir).asInt(), need(llm, "vocab_size", dir).asInt(),
                stops.stream().mapToInt(Integer::intValue).toArray(),
                new Sampling(s.path("top_p").asDouble(0.8), s.path("top_k").asInt(25), s.path("win_size").asInt(10),
                        s.path("tau_r").asDouble(0.1), s.path("min_token_text_ratio").asDouble(2),
                        s.path("max_token_text_ratio").asDouble(20)),
                need(flow, "n_timesteps", dir).asInt(), need(flow, "cfg_rate", dir).asDouble(),
                need(flow, "noise_frames", dir).asInt(), files, modules, speakerEncoder, speechTokenizer, family,
                silent.stream().mapToInt(Integer::intValue).toArray(), llm.path("max_silent_run").asInt(5),
                need(root, "vocoder", dir).path("source_harmonics").asInt(9), streaming(root, dir),
                // the estimator's valid frames do not see right padding (causal convolutions, per-frame norms, masked
                // attention): flows of different lengths may share one call; packs that do not say share equal lengths only
                flow.path("padding_invariant").asBoolean(false));
    }

    private static Streaming streaming(JsonNode root, Path dir) {
        JsonNode s = root.get("streaming");
        if (s == null || s.isNull()) {
            return null;
        }
        return new Streaming(need(s, "token_hop_len", dir).asInt(), need(s, "max_token_hop_len", dir).asInt(),
                need(s, "hop_scale_factor", dir).asInt(), need(s, "pre_lookahead_len", dir).asInt(),
                need(s, "encoder_chunk", dir).asInt(), need(s, "estimator_chunk", dir).asInt(),
                need(s, "mel_cache_frames", dir).asInt(), need(s, "source_cache_samples", dir).asInt(),
                VocoderCache.parse(s.path("vocoder_cache").asText(VocoderCache.CROSSFADE.id), dir));
    }

    private static JsonNode need(JsonNode node, String key, Path dir) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            throw new PackException("model pack " + dir + ": pack.json lacks '" + key + "'");
        }
        return v;
    }
}
