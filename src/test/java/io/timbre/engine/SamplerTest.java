package io.timbre.engine;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplerTest {
    static final PackManifest M = PackManifest.read(Path.of("models/tiny"));
    static final int V = M.vocabSize();

    static float[] logp(int... favoured) {
        float[] p = new float[V];
        Arrays.fill(p, -30f);
        double rest = 1.0;
        for (int i = 0; i < favoured.length; i++) {
            double q = rest / 2;
            p[favoured[i]] = (float) Math.log(q);
            rest -= q;
        }
        return p;
    }

    @Test
    void greedyTakesTheArgmaxAndSkipsStopTokensBelowMinLength() {
        Sampler g = Sampler.greedy(M);
        float[] p = logp(M.speechTokenSize(), 42);   // EOS most likely, then 42
        assertEquals(M.speechTokenSize(), g.next(p, 0, V, new int[0], 0, false));
        assertEquals(42, g.next(p, 0, V, new int[0], 0, true));
    }

    @Test
    void sameSeedSameTokensDifferentSeedDifferentTokens() {
        float[] p = new float[V];
        Arrays.fill(p, (float) Math.log(1.0 / V));
        int[] a = draw(Sampler.seeded(M, 1), p, 50);
        assertArrayEquals(a, draw(Sampler.seeded(M, 1), p, 50));
        assertNotEquals(Arrays.toString(a), Arrays.toString(draw(Sampler.seeded(M, 2), p, 50)));
    }

    @Test
    void nucleusStaysInsideTopPAndTopK() {
        // 7 gets 1/2, 9 gets 1/4, 11 gets 1/8 ...: top_p 0.8 keeps {7, 9, 11} (cumulative 0.5, 0.75, 0.875)
        float[] p = logp(7, 9, 11, 13, 15);
        Sampler s = Sampler.seeded(M, 3);
        int[] seen = new int[V];
        for (int i = 0; i < 2000; i++) {
            seen[s.next(p, 0, V, new int[0], 0, false)]++;
        }
        assertTrue(seen[7] > 0 && seen[9] > 0 && seen[11] > 0);
        assertEquals(2000, seen[7] + seen[9] + seen[11], "only the nucleus is sampled");
        assertTrue(seen[7] > seen[9] && seen[9] > seen[11], "in proportion to probability");
    }

    @Test
    void repetitionMasksTheRepeatedTokenAndDrawsFromTheRest() {
        // 7 has 1/2, the other half is spread over all other tokens: the nucleus is almost only 7; when 7 was just
        // produced, RAS sets 7 to -inf and draws from the softmax of the rest (upstream f2ddcbe), so never 7 again
        float[] p = new float[V];
        Arrays.fill(p, (float) Math.log(0.5 / (V - 1)));
        p[7] = (float) Math.log(0.5);
        Sampler s = Sampler.seeded(M, 4);
        int[] history = {7};
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = 0; i < 400; i++) {
            int id = s.next(p, 0, V, history, 1, false);
            assertNotEquals(7, id, "the repeated token is masked before the fallback draw");
            seen.add(id);
        }
        assertTrue(seen.size() > 300, "the fallback draws from the whole remaining distribution, saw " + seen.size());
        // without the repetition, 7 is what the nucleus gives
        assertEquals(7, Sampler.greedy(M).next(p, 0, V, new int[0], 0, false));
    }

    @Test
    void belowMinLengthOnlyEosIsMaskedAndTheRestIsRenormalised() {
        // EOS 1/2, 7 1/4, 9 1/8, 11 1/16, 13 1/32: with EOS masked the softmax of the rest gives 7 1/2, 9 1/4,
        // 11 1/8 (cumulative 0.875 >= top_p 0.8), so the nucleus is {7, 9, 11}; never EOS, never a retry
        float[] p = logp(M.speechTokenSize(), 7, 9, 11, 13);
        Sampler s = Sampler.seeded(M, 5);
        int[] seen = new int[V];
        for (int i = 0; i < 2000; i++) {
            seen[s.next(p, 0, V, new int[0], 0, true)]++;
        }
        assertEquals(0, seen[M.speechTokenSize()], "EOS is never chosen below min_len");
        assertEquals(2000, seen[7] + seen[9] + seen[11], "the nucleus of the renormalised rest");
        assertTrue(seen[7] > seen[9] && seen[9] > seen[11]);
        // the other stop tokens are not masked (as upstream): a 6562 that dominates is still chosen, and stops
        float[] q = logp(M.speechTokenSize() + 1, 42);
        assertEquals(M.speechTokenSize() + 1, Sampler.greedy(M).next(q, 0, V, new int[0], 0, true));
    }

    private static int[] draw(Sampler s, float[] p, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.next(p, 0, V, out, i, true);
        }
        return out;
    }
}
