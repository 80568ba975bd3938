package io.timbre.bench;

import io.timbre.engine.FlowDecoder;
import io.timbre.engine.HopDecoder;
import io.timbre.engine.ModelPack;
import io.timbre.engine.RandomSource;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.Tensors;
import io.timbre.engine.Vocoder;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Per-hop costs of chunked streaming (HopDecoder: the flow re-run over all tokens so far; the vocoder as the pack
 * declares it: on the new mel plus its 8-frame cache for "crossfade" (CosyVoice 2), re-run over all the mel so far for
 * "rerun" (CosyVoice 3)) on one or more packs, for a synthetic speaker and token stream; prints the median per hop
 * over the runs, and the non-streamed flow and vocoder of the same tokens for comparison. {@code --pack} may repeat:
 * each pack gets its own table (family and vocoder mode in its header), one after the other. A command, not a test:
 *
 * <pre>./mvnw -q test-compile exec:java -Dexec.classpathScope=test -Dexec.mainClass=io.timbre.bench.HopCostBenchmark \
 *     -Dexec.args="--pack models/bench --prompt-tokens 150 --tokens 400 --runs 3 --threads 1"</pre>
 *
 * (Lives in the test source set until the benchmarks have a source set of their own.)
 */
public final class HopCostBenchmark {
    public static void main(String[] args) {
        List<Path> packs = new ArrayList<>();
        int promptTokens = 150;
        int tokens = 400;
        int runs = 3;
        int threads = 1;
        String device = "cpu";
        for (int i = 0; i < args.length; i += 2) {
            switch (args[i]) {
                case "--pack" -> packs.add(Path.of(args[i + 1]));
                case "--prompt-tokens" -> promptTokens = Integer.parseInt(args[i + 1]);
                case "--tokens" -> tokens = Integer.parseInt(args[i + 1]);
                case "--runs" -> runs = Integer.parseInt(args[i + 1]);
                case "--threads" -> threads = Integer.parseInt(args[i + 1]);
                case "--device" -> device = args[i + 1];
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        torch.set_num_threads(threads);
        if (packs.isEmpty()) {
            packs.add(Path.of("models/bench"));
        }
        for (Path packDir : packs) {
            run(packDir, device, promptTokens, tokens, runs, threads);
        }
    }

    static void run(Path packDir, String device, int promptTokens, int tokens, int runs, int threads) {
        Random rnd = new Random(1);
        int[] stream = new int[tokens];
        for (int i = 0; i < tokens; i++) {
            stream[i] = rnd.nextInt(6561);
        }
        try (ModelPack pack = ModelPack.load(packDir, device);
             PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            int[] prompt = new int[promptTokens];
            float[] feat = new float[2 * promptTokens * 80];
            float[] emb = new float[192];
            for (int i = 0; i < promptTokens; i++) {
                prompt[i] = rnd.nextInt(6561);
            }
            for (int i = 0; i < feat.length; i++) {
                feat[i] = (float) (rnd.nextGaussian() * 2 - 6);
            }
            for (int i = 0; i < emb.length; i++) {
                emb[i] = (float) rnd.nextGaussian();
            }
            var dev = pack.device;
            try (SpeakerFeatures spk = new SpeakerFeatures(Tensors.on(Tensors.ints(new int[]{1, 2, 3}, 1, 3), dev),
                    Tensors.on(Tensors.ints(prompt, 1, promptTokens), dev), Tensors.on(Tensors.floats(feat, 1, 2L * promptTokens, 80), dev),
                    Tensors.on(Tensors.floats(emb, 1, 192), dev))) {
                System.out.printf("pack %s (%s, vocoder %s) on %s, %d threads; prompt %d tokens, %d new tokens (%.1f s of audio), "
                                + "%d runs (+1 warm-up)%n", pack.key(), pack.manifest.family(),
                        pack.manifest.streaming() == null ? "-" : pack.manifest.streaming().vocoderCache().id, device, threads,
                        promptTokens, tokens, tokens / 25.0, runs);
                List<List<long[]>> all = new ArrayList<>();
                List<HopDecoder.Hop> plan = new ArrayList<>();
                long[] whole = new long[2];
                List<long[]> wholeRuns = new ArrayList<>();
                for (int run = 0; run <= runs; run++) {
                    List<long[]> hops = new ArrayList<>();
                    plan.clear();
                    try (PointerScope inner = new PointerScope(); RandomSource random = new RandomSource(run);
                         HopDecoder d = new HopDecoder(pack, spk, random)) {
                        for (int n = 0; n <= tokens; n++) {
                            boolean done = n == tokens;
                            while (d.ready(n, done)) {
                                plan.add(d.plan(n, done));
                                d.next(Arrays.copyOf(stream, n), done, () -> false);
                                hops.add(new long[]{d.lastFlowNanos(), d.lastVocoderNanos()});
                            }
                        }
                    }
                    try (PointerScope inner = new PointerScope(); RandomSource random = new RandomSource(run)) {
                        long t0 = System.nanoTime();
                        Tensor mel = new FlowDecoder(pack).decode(spk, stream);
                        long t1 = System.nanoTime();
                        new Vocoder(pack).vocode(mel, random);
                        wholeRuns.add(new long[]{t1 - t0, System.nanoTime() - t1});
                    }
                    if (run > 0) {
                        all.add(hops);
                    } else {
                        wholeRuns.clear();
                    }
                }
                System.out.println("hop  offset  tokens  flush  flow ms  vocoder ms  hop ms  audio ms  cumulative ms");
                double cumulative = 0;
                for (int h = 0; h < plan.size(); h++) {
                    int hh = h;
                    double flow = median(all.stream().mapToLong(r -> r.get(hh)[0]).toArray()) / 1e6;
                    double voc = median(all.stream().mapToLong(r -> r.get(hh)[1]).toArray()) / 1e6;
                    cumulative += flow + voc;
                    HopDecoder.Hop p = plan.get(h);
                    System.out.printf("%3d  %6d  %6d  %5s  %7.1f  %10.1f  %6.1f  %8.0f  %13.1f%n", h, p.offset(), p.hop(), p.last(),
                            flow, voc, flow + voc, p.hop() * 40.0, cumulative);
                }
                whole[0] = (long) median(wholeRuns.stream().mapToLong(r -> r[0]).toArray());
                whole[1] = (long) median(wholeRuns.stream().mapToLong(r -> r[1]).toArray());
                System.out.printf("non-streamed, same tokens: flow %.1f ms, vocoder %.1f ms, total %.1f ms; streamed total %.1f ms%n",
                        whole[0] / 1e6, whole[1] / 1e6, (whole[0] + whole[1]) / 1e6, cumulative);
            }
        }
    }

    static double median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
    }
}
