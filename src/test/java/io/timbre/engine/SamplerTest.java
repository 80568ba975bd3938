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
    void repetitionFallsBackToTheFullDistribution() {
        // 7 has 1/2, the other half is spread over all other tokens: the nucleus is almost only 7; when 7 was
        // just produced, RAS draws from the full softmax instead, where 7 has 1/2
        float[] p = new float[V];
        Arrays.fill(p, (float) Math.log(0.5 / (V - 1)));
        p[7] = (float) Math.log(0.5);
        Sampler s = Sampler.seeded(M, 4);
        int[] history = {7};
        int others = 0;
        for (int i = 0; i < 400; i++) {
            if (s.next(p, 0, V, history, 1, false) != 7) {
                others++;
            }
        }
        assertTrue(others > 100 && others < 300, "about half from the full distribution, got " + others);
    }

    private static int[] draw(Sampler s, float[] p, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.next(p, 0, V, out, i, true);
        }
        return out;
    }
}
