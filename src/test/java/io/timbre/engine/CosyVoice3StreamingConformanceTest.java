package io.timbre.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * HopDecoder on a CosyVoice 3 pack against CosyVoice 3's own chunked streaming ({@code CosyVoice3Model.tts(stream=True)},
 * main ace7c47) on the conformance model (models/conformance/cosyvoice3, stage {@code streamed} of
 * generate_cosyvoice3.py): the pack declares {@code streaming.vocoder_cache = "rerun"}, so each hop's new mel joins
 * all the mel so far and the causal HiFT re-runs over it ({@code vocode_streaming}, finalize only for the flush);
 * no cross-fade, no source cache, no random draws. The same tokens fed one at a time must give upstream's hop plan,
 * its chunk boundaries (samples per emitted chunk), each hop's new mel (DiT chunk masks, pre-lookahead context) and
 * each chunk's waveform; then the seams and the relation between streamed and non-streamed output, against upstream's.
 */
class CosyVoice3StreamingConformanceTest {
    static final Path EXPECTED = CosyVoice3ConformanceTest.EXPECTED;

    /** Per-hop new mel (|x| up to ~6): measured max 1.7e-6 here (6 flow calls, 2 cases); the non-streamed DiT flow's tolerance. */
    static final float MEL_TOL = CosyVoice3ConformanceTest.MEL_TOL;
    /**
     * Causal HiFT re-run over upstream's own mel so far (finalize=False per hop, True for the flush), each new chunk
     * (|x| < 0.1): measured max 1.4e-7 (6 calls); the non-streamed HiFT tolerance.
     */
    static final float VOCODER_TOL = CosyVoice3ConformanceTest.WAV_TOL;
    /**
     * Streamed waveform from our own mel (the flow's ~2e-6 mel differences reach it through HiFT): measured max
     * 1.5e-7 per chunk here (6 chunks), so 2e-6 as for the non-streamed HiFT waveform.
     */
    static final float WAV_TOL = CosyVoice3ConformanceTest.WAV_TOL;
    /** Seams: largest |x[i+1] - x[i]| within +-5 ms (120 samples) of a chunk boundary over the largest elsewhere. */
    static final double SEAM_RATIO_BOUND = 1.0;

    static JsonNode streamed;
    static ModelPack pack;

    @BeforeAll
    static void load() throws Exception {
        streamed = new ObjectMapper().readTree(EXPECTED.resolve("streamed.json").toFile());
        TinyCosyVoice3Pack.ensure();
        pack = ModelPack.load(CosyVoice3ConformanceTest.PACK, "cpu");
    }

    @AfterAll
    static void close() {
        if (pack != null) {
            pack.close();
        }
    }

    @TestFactory
    List<DynamicTest> streaming() {
        List<DynamicTest> tests = new ArrayList<>();
        tests.add(DynamicTest.dynamicTest("pack declares hop streaming with a re-run vocoder", CosyVoice3StreamingConformanceTest::declaration));
        for (JsonNode c : streamed.get("cases")) {
            String id = c.get("id").asText();
            tests.add(DynamicTest.dynamicTest("hop mel of " + id, () -> hopMel(c)));
            tests.add(DynamicTest.dynamicTest("vocoder re-run over upstream's mel of " + id, () -> vocoderRerun(c)));
            tests.add(DynamicTest.dynamicTest("streamed waveform and chunk boundaries of " + id
                    + " (all cases streamed at once, hops interleaved)", () -> streamedWaveform(c)));
        }
        tests.add(DynamicTest.dynamicTest("a flush without hops is the non-streamed path", CosyVoice3StreamingConformanceTest::flushOnly));
        return tests;
    }

    /** The LLM done before the first hop: the flush alone is the non-streamed flow and vocoder, sample for sample. */
    static void flushOnly() {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            JsonNode c = streamed.get("cases").get(streamed.get("cases").size() - 1);
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            int[] tokens = Arrays.copyOf(Tensors.toInts(Golden.get(g, "speech_tokens")), 20);
            try (SpeakerFeatures spk = CosyVoice2StreamingConformanceTest.features(g);
                 RandomSource random = new RandomSource(0); HopDecoder d = new HopDecoder(pack, spk, random)) {
                assertTrue(d.plan(tokens.length, true).last(), "20 tokens are less than a first hop: one flush");
                float[] flushed = d.next(tokens, true, () -> false);
                assertTrue(d.finished());
                float[] whole = new Vocoder(pack).vocode(new FlowDecoder(pack).decode(spk, tokens));
                assertArrayEquals(whole, flushed, "the flush of a segment shorter than a hop");
            }
        }
    }

    /** CosyVoice3Model's constants, from the exporter's reading of cosyvoice3.yaml (DiT static_chunk_size = 25 * 2). */
    static void declaration() {
        assertTrue(pack.streams(), "the CosyVoice 3 pack streams by hop");
        PackManifest.Streaming s = pack.manifest.streaming();
        assertEquals(PackManifest.VocoderCache.RERUN, s.vocoderCache(), "CosyVoice3Model.token2wav re-runs the causal HiFT");
        assertEquals(25, s.tokenHopLen(), "token_hop_len");
        assertEquals(100, s.maxTokenHopLen(), "token_max_hop_len");
        assertEquals(2, s.hopScaleFactor(), "stream_scale_factor");
        assertEquals(3, s.preLookaheadLen(), "flow.pre_lookahead_len");
        assertEquals(50, s.estimatorChunk(), "DiT static_chunk_size in mel frames");
        assertEquals(0, s.melCacheFrames(), "no cross-fade mel cache");
        assertEquals(0, s.sourceCacheSamples(), "no source cache");
    }

    record Streamed(List<HopDecoder.Hop> hops, List<float[]> chunks, float[] joined) {
    }

    /** Our streams of every case, keyed by case id (computed once, by {@link #streamAll}). */
    static java.util.Map<String, Streamed> ours;

    /**
     * Every case streamed at once, as concurrent requests would be: the cases' tokens arrive one at a time in
     * lock-step (each case's LLM is done after its last token), and after each arrival every decoder that is ready
     * runs its hops; so the decoders' hops interleave (per-request state: CosyVoice keeps the hop length on the shared
     * model object, here nothing is shared). Each decoder is closed twice (idempotent).
     */
    static synchronized java.util.Map<String, Streamed> streamAll() {
        if (ours != null) {
            return ours;
        }
        List<JsonNode> cases = new ArrayList<>();
        streamed.get("cases").forEach(cases::add);
        int n = cases.size();
        SpeakerFeatures[] spk = new SpeakerFeatures[n];
        HopDecoder[] d = new HopDecoder[n];
        int[][] tokens = new int[n][];
        List<List<HopDecoder.Hop>> hops = new ArrayList<>();
        List<List<float[]>> chunks = new ArrayList<>();
        int longest = 0;
        boolean interleavedSeen = false;
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode();
             RandomSource random = new RandomSource(0)) {
            try {
                for (int i = 0; i < n; i++) {
                    GenericDict g = Golden.load(EXPECTED.resolve(cases.get(i).get("fixture").asText()));
                    tokens[i] = Tensors.toInts(Golden.get(g, "speech_tokens"));
                    spk[i] = CosyVoice2StreamingConformanceTest.features(g);
                    d[i] = new HopDecoder(pack, spk[i], random);
                    hops.add(new ArrayList<>());
                    chunks.add(new ArrayList<>());
                    longest = Math.max(longest, tokens[i].length);
                }
                int last = -1;
                for (int k = 0; k <= longest; k++) {
                    for (int i = 0; i < n; i++) {
                        int have = Math.min(k, tokens[i].length);
                        boolean done = k >= tokens[i].length;
                        int[] soFar = Arrays.copyOf(tokens[i], have);
                        while (d[i].ready(have, done)) {
                            hops.get(i).add(d[i].plan(have, done));
                            chunks.get(i).add(d[i].next(soFar, done, () -> false));
                            interleavedSeen |= last >= 0 && last != i && !d[last].finished() && !d[i].finished();
                            last = i;
                        }
                    }
                }
                for (int i = 0; i < n; i++) {
                    assertTrue(d[i].finished(), cases.get(i).get("id").asText() + ": the decoder flushed");
                }
            } finally {
                for (int i = 0; i < n; i++) {
                    if (d[i] != null) {
                        d[i].close();
                        d[i].close();
                    }
                    if (spk[i] != null) {
                        spk[i].close();
                    }
                }
            }
        }
        assertTrue(interleavedSeen, "the cases' hops interleaved");
        java.util.Map<String, Streamed> out = new java.util.LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
            int total = chunks.get(i).stream().mapToInt(x -> x.length).sum();
            float[] joined = new float[total];
            int at = 0;
            for (float[] x : chunks.get(i)) {
                System.arraycopy(x, 0, joined, at, x.length);
                at += x.length;
            }
            out.put(cases.get(i).get("id").asText(), new Streamed(hops.get(i), chunks.get(i), joined));
        }
        ours = out;
        return ours;
    }

    /** Each flow call of upstream's stream, recomputed with FlowDecoder.decodeStreaming on the same tokens. */
    static void hopMel(JsonNode c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            int[] tokens = Tensors.toInts(Golden.get(g, "speech_tokens"));
            Tensor want = Golden.get(g, "hop_mel");
            try (SpeakerFeatures spk = CosyVoice2StreamingConformanceTest.features(g)) {
                FlowDecoder flow = new FlowDecoder(pack);
                long frame = 0;
                for (JsonNode h : c.get("hops")) {
                    boolean finalize = h.get("finalize").asBoolean();
                    int offset = h.get("offset").asInt();
                    Tensor mel = flow.decodeStreaming(spk, tokens, h.get("tokens_in").asInt(),
                            finalize ? 0 : pack.manifest.streaming().preLookaheadLen(), h.get("streaming").asBoolean(), () -> false);
                    mel = mel.narrow(2, 2L * offset, mel.size(2) - 2L * offset);
                    long frames = h.get("mel_frames").asLong();
                    assertEquals(frames, mel.size(2), "hop at " + offset + ": mel frames");
                    float d = Golden.maxAbsDiff(Tensors.toFloats(want.narrow(2, frame, frames).contiguous()), Tensors.toFloats(mel));
                    System.out.printf("cv3 streaming %-8s hop at %3d (+%3d, streaming %s) mel max|diff| %.3g (tolerance %.1g)%n",
                            c.get("id").asText(), offset, h.get("hop").asInt(), h.get("streaming").asBoolean(), d, MEL_TOL);
                    assertTrue(d <= MEL_TOL, "hop mel differs by " + d);
                    frame += frames;
                }
            }
        }
    }

    /**
     * The vocoder alone: upstream's mel so far (its hop_mel up to each hop) through vocode_streaming with upstream's
     * finalize flag gives upstream's HiFT output length and, past the samples already emitted, upstream's chunk.
     */
    static void vocoderRerun(JsonNode c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            Tensor mel = Golden.get(g, "hop_mel");
            float[] want = Tensors.toFloats(Golden.get(g, "wav"));
            Vocoder vocoder = new Vocoder(pack);
            long frames = 0;
            int emitted = 0;
            int i = 0;
            for (JsonNode h : c.get("hops")) {
                frames += h.get("mel_frames").asLong();
                assertEquals(h.get("vocoder_mel_frames").asLong(), frames, "hop " + i + ": mel so far");
                float[] wav = Tensors.toFloats(vocoder.vocodeStreaming(mel.narrow(2, 0, frames).contiguous(),
                        h.get("vocoder_finalize").asBoolean()));
                assertEquals(h.get("vocoder_samples").asInt(), wav.length, "hop " + i + ": HiFT samples");
                float[] chunk = Arrays.copyOfRange(wav, emitted, wav.length);
                assertEquals(h.get("emitted_samples").asInt(), chunk.length, "hop " + i + ": emitted samples");
                float d = Golden.maxAbsDiff(Arrays.copyOfRange(want, emitted, emitted + chunk.length), chunk);
                System.out.printf("cv3 streaming %-8s vocoder over %4d frames (finalize %s) chunk %d wav max|diff| %.3g (tolerance %.1g)%n",
                        c.get("id").asText(), frames, h.get("vocoder_finalize").asBoolean(), i, d, VOCODER_TOL);
                assertTrue(d <= VOCODER_TOL, "chunk " + i + " differs by " + d);
                emitted += chunk.length;
                i++;
            }
            assertEquals(want.length, emitted, "all of upstream's samples");
        }
    }

    static void streamedWaveform(JsonNode c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            int[] tokens = Tensors.toInts(Golden.get(g, "speech_tokens"));
            float[] want = Tensors.toFloats(Golden.get(g, "wav"));
            try (SpeakerFeatures spk = CosyVoice2StreamingConformanceTest.features(g)) {
                Streamed s = streamAll().get(c.get("id").asText());
                JsonNode hops = c.get("hops");
                assertEquals(hops.size(), s.hops().size(), "number of hops");
                for (int i = 0; i < hops.size(); i++) {
                    assertEquals(hops.get(i).get("offset").asInt(), s.hops().get(i).offset(), "hop " + i + " offset");
                    assertEquals(hops.get(i).get("hop").asInt(), s.hops().get(i).hop(), "hop " + i + " tokens");
                    assertEquals(hops.get(i).get("finalize").asBoolean(), s.hops().get(i).last(), "hop " + i + " is the flush");
                }
                int[] wantLengths = new int[c.get("chunk_samples").size()];
                for (int i = 0; i < wantLengths.length; i++) {
                    wantLengths[i] = c.get("chunk_samples").get(i).asInt();
                }
                assertArrayEquals(wantLengths, s.chunks().stream().mapToInt(x -> x.length).toArray(), "chunk sizes");
                int at = 0;
                for (int i = 0; i < s.chunks().size(); i++) {
                    float[] chunk = s.chunks().get(i);
                    float d = Golden.maxAbsDiff(Arrays.copyOfRange(want, at, at + chunk.length), chunk);
                    System.out.printf("cv3 streaming %-8s chunk %d (%6d samples) wav max|diff| %.3g (tolerance %.1g)%n",
                            c.get("id").asText(), i, chunk.length, d, WAV_TOL);
                    assertTrue(d <= WAV_TOL, "chunk " + i + " differs by " + d);
                    at += chunk.length;
                }
                seams(c, s, want);
                relation(c, spk, tokens, s.joined());
            }
        }
    }

    /**
     * Each seam's discontinuity: the largest sample-to-sample jump within +-5 ms of an emitted chunk boundary against
     * the largest jump in the rest of the signal, ours and upstream's. Measured here (random-weight model, noise-like
     * output): ours equals upstream's, 0.656 (s_en200, 3 seams) and 0.592 (s_zh60, 1 seam) of the rest's largest jump, so a bound of 1.0:
     * no seam jumps more than the signal does elsewhere. (Without a cross-fade a seam is continuous only because the
     * causal HiFT's samples before the look-ahead do not change when more mel arrives.)
     */
    static void seams(JsonNode c, Streamed s, float[] upstream) {
        List<Integer> seams = new ArrayList<>();
        int at = 0;
        for (int i = 0; i < s.chunks().size() - 1; i++) {
            at += s.chunks().get(i).length;
            seams.add(at);
        }
        double ours = CosyVoice2StreamingConformanceTest.seamRatio(s.joined(), seams);
        double theirs = CosyVoice2StreamingConformanceTest.seamRatio(upstream, seams);
        System.out.printf("cv3 streaming %-8s seams %s: largest jump near a seam / elsewhere: ours %.3f, upstream %.3f (bound %.1f)%n",
                c.get("id").asText(), seams, ours, theirs, SEAM_RATIO_BOUND);
        assertTrue(ours <= SEAM_RATIO_BOUND, "a seam jumps " + ours + " x the largest jump elsewhere");
        assertEquals(theirs, ours, 0.01, "seam discontinuity relative to upstream's");
    }

    /**
     * Streamed vs non-streamed, ours against upstream's: the non-streamed output of the same tokens (one flow call
     * without chunk masks, one HiFT call) differs from the streamed one by the streaming mode itself (chunk masks,
     * look-ahead context); the RMS and the largest value of that difference must be upstream's (within 1%).
     */
    static void relation(JsonNode c, SpeakerFeatures spk, int[] tokens, float[] streamedWav) {
        Tensor mel = new FlowDecoder(pack).decode(spk, tokens);
        float[] whole = new Vocoder(pack).vocode(mel);
        assertEquals(whole.length, streamedWav.length, "streamed and non-streamed lengths");
        double sq = 0;
        double max = 0;
        for (int i = 0; i < whole.length; i++) {
            double d = streamedWav[i] - whole[i];
            sq += d * d;
            max = Math.max(max, Math.abs(d));
        }
        double rms = Math.sqrt(sq / whole.length);
        JsonNode up = c.get("non_streamed_vs_streamed");
        System.out.printf("cv3 streaming %-8s |streamed - non-streamed|: rms %.4g max %.4g; upstream rms %.4g max %.4g%n",
                c.get("id").asText(), rms, max, up.get("rms").asDouble(), up.get("max_abs").asDouble());
        assertEquals(up.get("rms").asDouble(), rms, 0.01 * up.get("rms").asDouble(), "rms of streamed - non-streamed");
        assertEquals(up.get("max_abs").asDouble(), max, 0.01 * up.get("max_abs").asDouble(), "max of streamed - non-streamed");
    }
}
