package io.timbre.engine;

import java.util.SplittableRandom;

/**
 * Next-token choice over the LLM's log-probabilities, as CosyVoice 2 does it: repetition-aware sampling
 * (ras_sampling: nucleus top-p/top-k, and if the pick already occurs in the recent window, a draw from the full
 * distribution instead), stop tokens suppressed below the minimum length; or greedy (argmax) on request.
 * One instance per sequence: it holds that sequence's random state, so results do not depend on batching.
 */
public final class Sampler {
    public static final int MAX_TRIALS = 100;

    private final PackManifest.Sampling p;
    private final int speechTokenSize;
    private final SplittableRandom random;   // null: greedy
    private final int[] topIds;
    private final double[] topProbs;

    private Sampler(PackManifest.Sampling p, int speechTokenSize, SplittableRandom random) {
        this.p = p;
        this.speechTokenSize = speechTokenSize;
        this.random = random;
        this.topIds = new int[Math.max(1, p.topK())];
        this.topProbs = new double[Math.max(1, p.topK())];
    }

    public static Sampler greedy(PackManifest manifest) {
        return new Sampler(manifest.sampling(), manifest.speechTokenSize(), null);
    }

    public static Sampler seeded(PackManifest manifest, long seed) {
        return new Sampler(manifest.sampling(), manifest.speechTokenSize(), new SplittableRandom(seed));
    }

    /**
     * @param logp      log-probabilities, {@code vocab} values from {@code offset}
     * @param decoded   tokens generated so far; {@code count} of them are valid
     * @param ignoreEos true below the minimum length: stop tokens (ids >= speech token size) are not chosen
     */
    public int next(float[] logp, int offset, int vocab, int[] decoded, int count, boolean ignoreEos) {
        if (random == null) {
            return argmax(logp, offset, ignoreEos ? speechTokenSize : vocab);
        }
        for (int trial = 0; trial < MAX_TRIALS; trial++) {
            int id = ras(logp, offset, vocab, decoded, count);
            if (!ignoreEos || id < speechTokenSize) {
                return id;
            }
        }
        throw new IllegalStateException("sampling kept choosing a stop token below the minimum length (" + MAX_TRIALS + " trials)");
    }

    private static int argmax(float[] logp, int offset, int n) {
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            float v = logp[offset + i];
            if (v > bestValue) {      // first maximum wins, as torch.argmax
                bestValue = v;
                best = i;
            }
        }
        return best;
    }

    private int ras(float[] logp, int offset, int vocab, int[] decoded, int count) {
        int id = nucleus(logp, offset, vocab);
        int from = Math.max(0, count - p.winSize());
        int repeats = 0;
        for (int i = from; i < count; i++) {
            if (decoded[i] == id) {
                repeats++;
            }
        }
        if (repeats >= p.winSize() * p.tauR()) {
            id = full(logp, offset, vocab);
        }
        return id;
    }

    /** nucleus_sampling: take tokens by descending probability while the mass < top_p and fewer than top_k. */
    private int nucleus(float[] logp, int offset, int vocab) {
        int k = topIds.length;
        int n = 0;
        // keep the k largest by (value desc, index asc): a stable descending sort's first k
        for (int i = 0; i < vocab; i++) {
            double v = logp[offset + i];
            if (n == k && v <= topProbs[n - 1]) {
                continue;
            }
            int j = n < k ? n++ : n - 1;
            while (j > 0 && topProbs[j - 1] < v) {
                topProbs[j] = topProbs[j - 1];
                topIds[j] = topIds[j - 1];
                j--;
            }
            topProbs[j] = v;
            topIds[j] = i;
        }
        double cum = 0;
        int taken = 0;
        double[] probs = new double[n];
        while (taken < n && cum < p.topP()) {
            probs[taken] = Math.exp(topProbs[taken]);
            cum += probs[taken];
            taken++;
        }
        return topIds[draw(probs, taken, cum)];
    }

    private int full(float[] logp, int offset, int vocab) {
        double total = 0;
        double[] probs = new double[vocab];
        for (int i = 0; i < vocab; i++) {
            probs[i] = Math.exp(logp[offset + i]);
            total += probs[i];
        }
        return draw(probs, vocab, total);
    }

    private int draw(double[] probs, int n, double total) {
        double u = random.nextDouble() * total;
        for (int i = 0; i < n; i++) {
            u -= probs[i];
            if (u < 0) {
                return i;
            }
        }
        return n - 1;
    }
}
