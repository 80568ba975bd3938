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

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * HopDecoder against CosyVoice's own chunked streaming ({@code CosyVoice2Model.tts(stream=True)}, main ace7c47) on
 * the conformance model (models/conformance/cosyvoice2, stage {@code streamed} of generate_cosyvoice2.py): the same
 * tokens fed one at a time must give upstream's hop plan, its chunk boundaries (samples per emitted chunk), each
 * hop's new mel and each chunk's waveform, HiFT's draws from a {@link RandomSource} seeded as upstream's
 * {@code torch.manual_seed} before the stream. Then the seams (see {@link #seams}) and the relation between the
 * streamed and the non-streamed output, against upstream's.
 */
class CosyVoice2StreamingConformanceTest {
    static final java.nio.file.Path EXPECTED = CosyVoice2ConformanceTest.EXPECTED;

    /** Per-hop new mel (|x| up to ~6): measured max 1.7e-5 here (6 flow calls, 2 cases); the non-streamed flow's tolerance. */
    static final float MEL_TOL = CosyVoice2ConformanceTest.MEL_TOL;
    /**
     * Streamed waveform (|x| < 0.12): the flow's ~1e-5 mel differences reach the waveform through HiFT; measured
     * max 1.3e-7 per chunk here (6 chunks), so 2e-6 as for the non-streamed HiFT waveform.
     */
    static final float WAV_TOL = CosyVoice2ConformanceTest.WAV_TOL;
    /** Seams: largest |x[i+1] - x[i]| within +-5 ms (120 samples) of a seam over the largest elsewhere. */
    static final double SEAM_RATIO_BOUND = 1.0;

    static JsonNode streamed;
    static ModelPack pack;

    @BeforeAll
    static void load() throws Exception {
        streamed = new ObjectMapper().readTree(EXPECTED.resolve("streamed.json").toFile());
        CosyVoice2ConformanceTest.exportOnce();
        pack = ModelPack.load(CosyVoice2ConformanceTest.PACK, "cpu");
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
        for (JsonNode c : streamed.get("cases")) {
            String id = c.get("id").asText();
            tests.add(DynamicTest.dynamicTest("hop mel of " + id, () -> hopMel(c)));
            tests.add(DynamicTest.dynamicTest("streamed waveform and chunk boundaries of " + id, () -> streamedWaveform(c)));
        }
        return tests;
    }

    record Streamed(List<HopDecoder.Hop> hops, List<float[]> chunks, float[] joined) {
    }

    /**
     * Flow batching across requests against upstream: every case streamed at once, each on its own thread, their
     * flows' estimator steps stacked by one {@link FlowBatcher} (the cases' prompts differ in length, so the shorter
     * are padded: the exporter declares CosyVoice's estimator padding-invariant). Each case's chunks must still be
     * upstream's, within the same tolerance as alone.
     */
    @org.junit.jupiter.api.Test
    void casesStreamedAtOnceWithStackedFlowsStayUpstreams() throws Exception {
        assertTrue(pack.manifest.flowPaddingInvariant(), "the exporter declares CosyVoice's estimator padding-invariant");
        FlowBatcher batcher = new FlowBatcher(pack, 4);
        long seed = streamed.get("hift_seed").asLong();
        List<java.util.concurrent.Callable<String>> streams = new ArrayList<>();
        for (JsonNode c : streamed.get("cases")) {
            streams.add(() -> streamAgainstUpstream(c, seed, batcher));
        }
        for (String line : FlowBatcherTest.startedTogether(batcher, streams, 10)) {
            System.out.println("streaming with stacked flows: " + line);
        }
        System.out.printf("streaming with stacked flows: %d estimator calls for %d steps%n", batcher.calls(), batcher.steps());
        assertTrue(batcher.calls() < batcher.steps(), "the cases' flows shared estimator calls");
    }

    private static String streamAgainstUpstream(JsonNode c, long seed, FlowBatcher batcher) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            int[] tokens = Tensors.toInts(Golden.get(g, "speech_tokens"));
            float[] want = Tensors.toFloats(Golden.get(g, "wav"));
            try (SpeakerFeatures spk = features(g); RandomSource random = new RandomSource(seed);
                 HopDecoder d = new HopDecoder(pack, spk, random, batcher)) {
                List<float[]> chunks = HopDecoderTest.stream(d, tokens).chunks();
                assertEquals(c.get("chunk_samples").size(), chunks.size(), c.get("id").asText() + ": chunks");
                int at = 0;
                float worst = 0;
                for (int i = 0; i < chunks.size(); i++) {
                    float[] chunk = chunks.get(i);
                    assertEquals(c.get("chunk_samples").get(i).asInt(), chunk.length, c.get("id").asText() + ": chunk " + i + " samples");
                    worst = Math.max(worst, Golden.maxAbsDiff(Arrays.copyOfRange(want, at, at + chunk.length), chunk));
                    at += chunk.length;
                }
                assertTrue(worst <= WAV_TOL, c.get("id").asText() + ": a chunk differs from upstream's by " + worst);
                return String.format(java.util.Locale.ROOT, "%s (prompt %d tokens, %d chunks) wav max|diff| %.3g (tolerance %.1g)",
                        c.get("id").asText(), spk.tokenLength(), chunks.size(), worst, WAV_TOL);
            }
        }
    }

    static SpeakerFeatures features(GenericDict g) {
        return new SpeakerFeatures(Golden.get(g, "prompt_text"), Golden.get(g, "flow_prompt_speech_token"),
                Golden.get(g, "prompt_speech_feat"), Golden.get(g, "embedding"));
    }

    static Streamed stream(SpeakerFeatures spk, int[] tokens, long seed) {
        List<HopDecoder.Hop> hops;
        List<float[]> chunks;
        try (RandomSource random = new RandomSource(seed); HopDecoder d = new HopDecoder(pack, spk, random)) {
            HopDecoderTest.Run run = HopDecoderTest.stream(d, tokens);
            hops = run.hops();
            chunks = run.chunks();
        }
        int total = chunks.stream().mapToInt(x -> x.length).sum();
        float[] joined = new float[total];
        int at = 0;
        for (float[] x : chunks) {
            System.arraycopy(x, 0, joined, at, x.length);
            at += x.length;
        }
        return new Streamed(hops, chunks, joined);
    }

    /** Each flow call of upstream's stream, recomputed with FlowDecoder.decodeStreaming on the same tokens. */
    static void hopMel(JsonNode c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            int[] tokens = Tensors.toInts(Golden.get(g, "speech_tokens"));
            Tensor want = Golden.get(g, "hop_mel");
            try (SpeakerFeatures spk = features(g)) {
                FlowDecoder flow = new FlowDecoder(pack);
                long frame = 0;
                for (JsonNode h : c.get("hops")) {
                    boolean finalize = h.get("finalize").asBoolean();
                    int offset = h.get("offset").asInt();
                    Tensor mel = flow.decodeStreaming(spk, tokens, h.get("tokens_in").asInt(), finalize ? 0 : 3,
                            h.get("streaming").asBoolean(), () -> false);
                    mel = mel.narrow(2, 2L * offset, mel.size(2) - 2L * offset);
                    long frames = h.get("mel_frames").asLong();
                    assertEquals(frames, mel.size(2), "hop at " + offset + ": mel frames");
                    float d = Golden.maxAbsDiff(Tensors.toFloats(want.narrow(2, frame, frames).contiguous()), Tensors.toFloats(mel));
                    System.out.printf("streaming %-8s hop at %3d (+%3d, streaming %s) mel max|diff| %.3g (tolerance %.1g)%n",
                            c.get("id").asText(), offset, h.get("hop").asInt(), h.get("streaming").asBoolean(), d, MEL_TOL);
                    assertTrue(d <= MEL_TOL, "hop mel differs by " + d);
                    frame += frames;
                }
            }
        }
    }

    static void streamedWaveform(JsonNode c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            int[] tokens = Tensors.toInts(Golden.get(g, "speech_tokens"));
            float[] want = Tensors.toFloats(Golden.get(g, "wav"));
            long seed = streamed.get("hift_seed").asLong();
            try (SpeakerFeatures spk = features(g)) {
                Streamed s = stream(spk, tokens, seed);
                // hop plan: upstream's offsets and hop lengths, the last one its flush
                JsonNode hops = c.get("hops");
                assertEquals(hops.size(), s.hops().size(), "number of hops");
                for (int i = 0; i < hops.size(); i++) {
                    assertEquals(hops.get(i).get("offset").asInt(), s.hops().get(i).offset(), "hop " + i + " offset");
                    assertEquals(hops.get(i).get("hop").asInt(), s.hops().get(i).hop(), "hop " + i + " tokens");
                    assertEquals(hops.get(i).get("finalize").asBoolean(), s.hops().get(i).last(), "hop " + i + " is the flush");
                }
                // chunk boundaries: the samples of every emitted chunk
                int[] wantLengths = new int[c.get("chunk_samples").size()];
                for (int i = 0; i < wantLengths.length; i++) {
                    wantLengths[i] = c.get("chunk_samples").get(i).asInt();
                }
                assertArrayEquals(wantLengths, s.chunks().stream().mapToInt(x -> x.length).toArray(), "chunk sizes");
                int at = 0;
                for (int i = 0; i < s.chunks().size(); i++) {
                    float[] chunk = s.chunks().get(i);
                    float d = Golden.maxAbsDiff(Arrays.copyOfRange(want, at, at + chunk.length), chunk);
                    System.out.printf("streaming %-8s chunk %d (%6d samples) wav max|diff| %.3g (tolerance %.1g)%n",
                            c.get("id").asText(), i, chunk.length, d, WAV_TOL);
                    assertTrue(d <= WAV_TOL, "chunk " + i + " differs by " + d);
                    at += chunk.length;
                }
                seams(c, s, want);
                relation(c, spk, tokens, seed, s.joined());
            }
        }
    }

    /**
     * Each seam's discontinuity: the largest sample-to-sample jump within +-5 ms of a seam (an emitted chunk
     * boundary, and the end of its 160 ms cross-fade) against the largest jump in the rest of the signal, for ours
     * and for upstream's stream. Measured here (random-weight model, noise-like output): ours equals upstream's;
     * 0.932 (s_en200, 6 seams) and 0.889 (s_zh60, 2 seams) of the rest's largest jump, so a bound of 1.0: no seam jumps
     * more than the signal does elsewhere.
     */
    static void seams(JsonNode c, Streamed s, float[] upstream) {
        int cross = pack.manifest.streaming().sourceCacheSamples();
        List<Integer> seams = new ArrayList<>();
        int at = 0;
        for (int i = 0; i < s.chunks().size() - 1; i++) {
            at += s.chunks().get(i).length;
            seams.add(at);
            seams.add(at + cross);
        }
        double ours = seamRatio(s.joined(), seams);
        double theirs = seamRatio(upstream, seams);
        System.out.printf("streaming %-8s seams %s: largest jump near a seam / elsewhere: ours %.3f, upstream %.3f (bound %.1f)%n",
                c.get("id").asText(), seams, ours, theirs, SEAM_RATIO_BOUND);
        assertTrue(ours <= SEAM_RATIO_BOUND, "a seam jumps " + ours + " x the largest jump elsewhere");
        assertEquals(theirs, ours, 0.01, "seam discontinuity relative to upstream's");
    }

    static double seamRatio(float[] x, List<Integer> seams) {
        int w = 120;   // 5 ms at 24 kHz
        boolean[] near = new boolean[x.length];
        for (int s : seams) {
            for (int i = Math.max(0, s - w); i < Math.min(x.length, s + w); i++) {
                near[i] = true;
            }
        }
        double seam = 0;
        double rest = 0;
        for (int i = 0; i + 1 < x.length; i++) {
            double jump = Math.abs(x[i + 1] - x[i]);
            if (near[i]) {
                seam = Math.max(seam, jump);
            } else {
                rest = Math.max(rest, jump);
            }
        }
        return seam / rest;
    }

    /**
     * Streamed vs non-streamed, ours against upstream's: the non-streamed output of the same tokens (one flow call
     * without chunk masks, one HiFT call, same seed) differs from the streamed one by the streaming mode itself;
     * the RMS of that difference must be upstream's (within 1%), as must its largest value.
     */
    static void relation(JsonNode c, SpeakerFeatures spk, int[] tokens, long seed, float[] streamedWav) {
        Tensor mel = new FlowDecoder(pack).decode(spk, tokens);
        float[] whole;
        try (RandomSource random = new RandomSource(seed)) {
            whole = new Vocoder(pack).vocode(mel, random);
        }
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
        System.out.printf("streaming %-8s |streamed - non-streamed|: rms %.4g max %.4g; upstream rms %.4g max %.4g%n",
                c.get("id").asText(), rms, max, up.get("rms").asDouble(), up.get("max_abs").asDouble());
        assertEquals(up.get("rms").asDouble(), rms, 0.01 * up.get("rms").asDouble(), "rms of streamed - non-streamed");
        assertEquals(up.get("max_abs").asDouble(), max, 0.01 * up.get("max_abs").asDouble(), "max of streamed - non-streamed");
    }
}
