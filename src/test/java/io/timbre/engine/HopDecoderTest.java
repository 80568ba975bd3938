package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * HopDecoder on the tiny pack, fed the golden `tone` case's 260 speech tokens one at a time as an LLM would sample
 * them: hop plan (prompt 85 tokens -> first hop 25 + 15 pad = 40, then 50, 100, then the 70-token flush), sample
 * counts, per-instance hop state, repeatability, and the flush-only case against the non-streamed path.
 */
class HopDecoderTest {
    static ModelPack pack;

    @BeforeAll
    static void load() {
        pack = ModelPack.load(Golden.PACK, "cpu");
    }

    @AfterAll
    static void close() {
        pack.close();
    }

    record Run(List<HopDecoder.Hop> hops, List<float[]> chunks) {
        float[] joined() {
            int n = chunks.stream().mapToInt(c -> c.length).sum();
            float[] out = new float[n];
            int at = 0;
            for (float[] c : chunks) {
                System.arraycopy(c, 0, out, at, c.length);
                at += c.length;
            }
            return out;
        }
    }

    static SpeakerFeatures features(GenericDict g) {
        return new SpeakerFeatures.Data(Tensors.toInts(Golden.get(g, "prompt_text")),
                Tensors.toInts(Golden.get(g, "llm_prompt_speech_token")), Tensors.toFloats(Golden.get(g, "prompt_speech_feat")),
                Tensors.toFloats(Golden.get(g, "flow_embedding"))).toFeatures(pack.device);
    }

    /** Feeds tokens one by one; runs a hop whenever the decoder says one is ready, then the flush. */
    static Run stream(HopDecoder d, int[] tokens) {
        List<HopDecoder.Hop> hops = new ArrayList<>();
        List<float[]> chunks = new ArrayList<>();
        for (int n = 0; n <= tokens.length; n++) {
            boolean done = n == tokens.length;
            int[] soFar = Arrays.copyOf(tokens, n);
            while (d.ready(n, done)) {
                hops.add(d.plan(n, done));
                chunks.add(d.next(soFar, done, () -> false));
            }
        }
        return new Run(hops, chunks);
    }

    static int[] toneTokens(GenericDict g) {
        return Tensors.toInts(Golden.get(g, "speech_tokens"));
    }

    @Test
    void hopsFollowCosyVoicePlanAndCoverEveryToken() {
        try (PointerScope scope = new PointerScope()) {
            GenericDict g = Golden.load(Golden.DIR.resolve("tone.pt"));
            int[] tokens = toneTokens(g);
            try (SpeakerFeatures spk = features(g); RandomSource rnd = new RandomSource(7);
                 HopDecoder d = new HopDecoder(pack, spk, rnd)) {
                assertEquals(85, spk.tokenLength());
                Run r = stream(d, tokens);
                assertEquals(List.of(new HopDecoder.Hop(0, 0, 40, false), new HopDecoder.Hop(1, 40, 50, false),
                        new HopDecoder.Hop(2, 90, 100, false), new HopDecoder.Hop(3, 190, 70, true)), r.hops());
                // a hop emits its tokens' samples minus the 3840 held back for the cross-fade, plus the 3840 held before
                assertEquals(40 * 960 - 3840, r.chunks().get(0).length);
                assertEquals(50 * 960, r.chunks().get(1).length);
                assertEquals(100 * 960, r.chunks().get(2).length);
                assertEquals(70 * 960 + 3840, r.chunks().get(3).length);
                assertEquals(tokens.length * 960, r.joined().length, "every token's 960 samples, once");
                assertTrue(d.finished());
                assertFalse(d.ready(tokens.length, true));
                for (float x : r.joined()) {
                    assertTrue(Float.isFinite(x) && Math.abs(x) <= 0.99f);
                }
                assertThrows(IllegalStateException.class, () -> d.next(tokens, true, () -> false));
            }
        }
    }

    @Test
    void hopStateIsPerInstanceAndRepeatable() {
        try (PointerScope scope = new PointerScope()) {
            GenericDict g = Golden.load(Golden.DIR.resolve("tone.pt"));
            int[] tokens = Arrays.copyOf(toneTokens(g), 150);
            try (SpeakerFeatures spk = features(g)) {
                Run alone;
                try (RandomSource rnd = new RandomSource(3); HopDecoder d = new HopDecoder(pack, spk, rnd)) {
                    alone = stream(d, tokens);
                }
                // three more streams, two of them interleaved hop by hop: each starts with its own 40-token hop
                // (upstream's shared hop length would start the third at 100) and gives the same bytes
                try (RandomSource r1 = new RandomSource(3); RandomSource r2 = new RandomSource(3); RandomSource r3 = new RandomSource(3);
                     HopDecoder a = new HopDecoder(pack, spk, r1); HopDecoder b = new HopDecoder(pack, spk, r2);
                     HopDecoder c = new HopDecoder(pack, spk, r3)) {
                    List<float[]> ca = new ArrayList<>();
                    List<float[]> cb = new ArrayList<>();
                    for (int n = 0; n <= tokens.length; n++) {
                        boolean done = n == tokens.length;
                        int[] soFar = Arrays.copyOf(tokens, n);
                        while (a.ready(n, done) || b.ready(n, done)) {
                            if (a.ready(n, done)) {
                                ca.add(a.next(soFar, done, () -> false));
                            }
                            if (b.ready(n, done)) {
                                cb.add(b.next(soFar, done, () -> false));
                            }
                        }
                    }
                    Run third = stream(c, tokens);
                    assertEquals(alone.hops(), third.hops());
                    assertEquals(40, third.hops().get(0).hop());
                    assertArrayEquals(alone.joined(), third.joined());
                    assertArrayEquals(alone.joined(), new Run(List.of(), ca).joined());
                    assertArrayEquals(alone.joined(), new Run(List.of(), cb).joined());
                }
            }
        }
    }

    /** An LLM that stops before the first hop leaves only the flush: exactly the non-streamed flow and vocoder. */
    @Test
    void flushOnlyEqualsTheNonStreamedPath() {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(Golden.DIR.resolve("tone.pt"));
            int[] tokens = Arrays.copyOf(toneTokens(g), 30);   // < 40 + 3
            try (SpeakerFeatures spk = features(g)) {
                Run r;
                try (RandomSource rnd = new RandomSource(11); HopDecoder d = new HopDecoder(pack, spk, rnd)) {
                    r = stream(d, tokens);
                }
                assertEquals(1, r.hops().size());
                Tensor mel = new FlowDecoder(pack).decode(spk, tokens);
                float[] whole;
                try (RandomSource rnd = new RandomSource(11)) {
                    whole = new Vocoder(pack).vocode(mel, rnd);
                }
                assertArrayEquals(whole, r.joined());
            }
        }
    }
}
