package io.timbre.engine;

import java.util.SplittableRandom;

/**
 * Next-token choice over the LLM's log-probabilities, as CosyVoice 2's Qwen2LM.sampling_ids does it on its current
 * main branch:
 * <ul>
 * <li>below the minimum length only EOS (the speech token size, 6561) is set to -inf and the token is chosen from
 * the rest (upstream 0e62489, 2026-02-11, replaced the retry loop; this cannot fail). The other two stop tokens stay
 * choosable there, as upstream, and end the sequence like EOS;</li>
 * <li>repetition-aware sampling (ras_sampling): nucleus sampling over softmax(scores) sorted descending (stable),
 * taking tokens while the cumulative probability is below top_p and fewer than top_k are taken; if the pick occurs
 * at least win_size * tau_r times in the last win_size tokens, its score is set to -inf and the token is drawn from
 * the softmax over the whole vocabulary (upstream f2ddcbe, 2026-02-04, added the -inf);</li>
 * <li>or greedy (argmax of the masked scores, first maximum) on request.</li>
 * </ul>
 * One instance per sequence: it holds that sequence's random state, so results do not depend on batching.
 */
public final class Sampler {
    private final PackManifest.Sampling p;
    private final int eos;
    private final SplittableRandom random;   // null: greedy
    private double[] scores = new double[0];
    private final int[] topIds;
    private final double[] topScores;

    private Sampler(PackManifest.Sampling p, int eos, SplittableRandom random) {
        this.p = p;
        this.eos = eos;
        this.random = random;
        this.topIds = new int[Math.max(1, p.topK())];
        this.topScores = new double[Math.max(1, p.topK())];
    }

    public static Sampler greedy(PackManifest manifest) {
        return new Sampler(manifest.sampling(), manifest.speechTokenSize(), null);
    }

    public static Sampler seeded(PackManifest manifest, long seed) {
        return new Sampler(manifest.sampling(), manifest.speechTokenSize(), new SplittableRandom(seed));
    }

    /**
     * @param logp      log-probabilities, {@code vocab} values from {@code offset} (not modified)
     * @param decoded   tokens generated so far; {@code count} of them are valid
     * @param ignoreEos true below the minimum length: EOS gets probability 0
     */
    public int next(float[] logp, int offset, int vocab, int[] decoded, int count, boolean ignoreEos) {
        if (scores.length != vocab) {
            scores = new double[vocab];
        }
        for (int i = 0; i < vocab; i++) {
            scores[i] = logp[offset + i];
        }
        if (ignoreEos && eos < vocab) {
            scores[eos] = Double.NEGATIVE_INFINITY;
        }
        if (random == null) {
            return argmax(scores, vocab);
        }
        return ras(vocab, decoded, count);
    }

    private static int argmax(double[] s, int n) {
        int best = 0;
        double bestValue = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            if (s[i] > bestValue) {      // first maximum wins, as torch.argmax
                bestValue = s[i];
                best = i;
            }
        }
        return best;
    }

    private int ras(int vocab, int[] decoded, int count) {
        int id = nucleus(vocab);
        int from = Math.max(0, count - p.winSize());
        int repeats = 0;
        for (int i = from; i < count; i++) {
            if (decoded[i] == id) {
                repeats++;
            }
        }
        if (repeats >= p.winSize() * p.tauR()) {
            scores[id] = Double.NEGATIVE_INFINITY;
            id = full(vocab);
        }
        return id;
    }

    /** Log of the softmax denominator over the scores (masked entries are -inf and contribute 0). */
    private double logSumExp(int vocab) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, scores[i]);
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += Math.exp(scores[i] - max);
        }
        return max + Math.log(sum);
    }

    /** nucleus_sampling: descending by probability (ties: lower id first), while cum < top_p and fewer than top_k. */
    private int nucleus(int vocab) {
        int k = topIds.length;
        int n = 0;
        for (int i = 0; i < vocab; i++) {
            double v = scores[i];
            if (n == k && v <= topScores[n - 1]) {
                continue;
            }
            int j = n < k ? n++ : n - 1;
            while (j > 0 && topScores[j - 1] < v) {
                topScores[j] = topScores[j - 1];
                topIds[j] = topIds[j - 1];
                j--;
            }
            topScores[j] = v;
            topIds[j] = i;
        }
        double lse = logSumExp(vocab);
        double cum = 0;
        int taken = 0;
        double[] probs = new double[n];
        while (taken < n && cum < p.topP()) {
            probs[taken] = Math.exp(topScores[taken] - lse);
            cum += probs[taken];
            taken++;
        }
        return topIds[draw(probs, taken, cum)];
    }

    /** random_sampling: a draw from the softmax over the whole vocabulary (masked entries excluded). */
    private int full(int vocab) {
        double lse = logSumExp(vocab);
        double total = 0;
        double[] probs = new double[vocab];
        for (int i = 0; i < vocab; i++) {
            probs[i] = Math.exp(scores[i] - lse);
            total += probs[i];
        }
        return draw(probs, vocab, total);
    }

    private int draw(double[] probs, int n, double total) {
        double u = random.nextDouble() * total;
        int last = 0;
        for (int i = 0; i < n; i++) {
            if (probs[i] > 0) {
                last = i;
                u -= probs[i];
                if (u < 0) {
                    return i;
                }
            }
        }
        return last;   // rounding: the last token with a non-zero probability
    }
}
