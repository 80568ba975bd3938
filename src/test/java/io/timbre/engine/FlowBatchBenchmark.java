package io.timbre.engine;

import io.timbre.audio.WavCodec;
import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.PointerScope;
import io.timbre.engine.FlowDecoder.Step;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Flow batching micro-benchmark (a command, not a test): is it worth stacking the flow estimator step of several
 * requests' chunks into one call? One Euler step of the flow's estimator for N requests, each a hop-sized input
 * (the speaker's prompt plus {@code --hop} tokens plus the lookahead, with classifier-free guidance: a batch of 2 per
 * request), run as N separate calls (batch 2 each, as the engine does today) and as one call with the N requests
 * stacked (batch 2N). Prints the median time per step of both, the speedup (separate / stacked) and the time per
 * request-step, at N = 1, 2, 4, 8. N = 1 runs the same call both ways: its ratio is the measurement's noise.
 *
 * <p>Issue 12's rule: cross-request flow batching stays only if it gains at least 1.3x throughput at 8 clients; the
 * estimator's share of a request's time bounds what it can gain end to end (see the README, Benchmarks).
 *
 * <pre>./mvnw -q test-compile exec:java -Dexec.mainClass=io.timbre.engine.FlowBatchBenchmark \
 *     -Dexec.args="--pack models/bench --batches 1,2,4,8 --reps 10"</pre>
 */
public final class FlowBatchBenchmark {

    public static void main(String[] args) throws Exception {
        Path packDir = Path.of("models/bench");
        Path prompt = Path.of("models/tiny/golden/tone.wav");
        String promptText = "A steady vowel for the speaker prompt.";
        int hop = 25;
        int lookahead = 3;
        int[] batches = {1, 2, 4, 8};
        int reps = 10;
        int workers = 2;
        int threads = Runtime.getRuntime().availableProcessors();
        String device = "cpu";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--pack" -> packDir = Path.of(args[++i]);
                case "--prompt" -> prompt = Path.of(args[++i]);
                case "--hop" -> hop = Integer.parseInt(args[++i]);
                case "--lookahead" -> lookahead = Integer.parseInt(args[++i]);
                case "--batches" -> batches = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
                case "--reps" -> reps = Integer.parseInt(args[++i]);
                case "--workers" -> workers = Integer.parseInt(args[++i]);
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--device" -> device = args[++i];
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + " (--pack DIR --prompt WAV --hop 25 --lookahead 3 --batches 1,2,4,8 --reps N --threads N --workers 2 --device cpu)");
            }
        }
        if (!Files.isRegularFile(packDir.resolve("pack.json"))) {
            System.err.println("no model pack at " + packDir + "; build it: /usr/bin/python3 models/build_pack.py --size bench --out " + packDir);
            System.exit(2);
        }
        torch.set_num_threads(threads);
        float[] pcm = WavCodec.decode(Files.readAllBytes(prompt)).samples();
        try (ModelPack pack = ModelPack.load(packDir, device);
             TextTokenizer tok = new TextTokenizer(packDir.resolve(pack.manifest.moduleFiles().get("tokenizer")));
             SpeakerFeatures spk = new FeatureExtractor(pack, tok).extract(pcm, 16000, promptText);
             PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            int fresh = hop + lookahead;
            long frames = 2L * (spk.tokenLength() + fresh);
            System.out.printf(Locale.ROOT, "flow batching micro-benchmark: pack %s on %s, %d intra-op threads; per request one "
                            + "estimator step over %d prompt + %d hop + %d lookahead tokens = %d mel frames, CFG batch 2; median of %d%n",
                    packDir, device, threads, spk.tokenLength(), hop, lookahead, frames, reps);
            Step one = inputs(pack, spk, fresh, new Random(1));
            System.out.printf(Locale.ROOT, "| N requests | N separate calls (batch 2), one after the other ms | the same on %d threads at once ms "
                    + "| one stacked call (batch 2N) ms | stacked vs one after the other | stacked vs at once | ms per request-step, at once | stacked |%n", workers);
            System.out.println("|---|---|---|---|---|---|---|---|");
            java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(workers);
            for (int n : batches) {
                List<Step> each = new ArrayList<>();
                for (int r = 0; r < n; r++) {
                    each.add(r == 0 ? one : inputs(pack, spk, fresh, new Random(1 + r)));
                }
                Step stacked = FlowBatcher.stack(each);   // equal lengths: no padding
                double[] separate = new double[reps];
                double[] concurrent = new double[reps];
                double[] together = new double[reps];
                for (int w = 0; w < 1; w++) {   // warm-up: the first calls of a new shape are slower
                    each.forEach(s -> run(pack, s));
                    timeConcurrent(each, pack, pool);
                    run(pack, stacked);
                }
                for (int r = 0; r < reps; r++) {
                    // rotate which goes first, so that none profits from the others' warm caches
                    for (int k = 0; k < 3; k++) {
                        switch ((r + k) % 3) {
                            case 0 -> separate[r] = timeSeparate(each, pack);
                            case 1 -> concurrent[r] = timeConcurrent(each, pack, pool);
                            default -> together[r] = time(stacked, pack);
                        }
                    }
                }
                double sep = median(separate);
                double con = median(concurrent);
                double tog = median(together);
                System.out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.1f | %.1f |%n", n, sep, con, tog, sep / tog,
                        con / tog, con / n, tog / n);
            }
            pool.shutdown();
        }
    }

    static double timeSeparate(List<Step> each, ModelPack pack) {
        long a = System.nanoTime();
        for (Step s : each) {
            run(pack, s);
        }
        return (System.nanoTime() - a) / 1e6;
    }

    /** The separate calls on the pool's threads at once (each in its own InferenceMode), until the last is done. */
    static double timeConcurrent(List<Step> each, ModelPack pack, java.util.concurrent.ExecutorService pool) {
        long a = System.nanoTime();
        List<java.util.concurrent.Future<?>> running = new ArrayList<>();
        for (Step s : each) {
            running.add(pool.submit(() -> {
                try (InferenceMode mode = new InferenceMode()) {
                    run(pack, s);
                }
            }));
        }
        for (java.util.concurrent.Future<?> f : running) {
            try {
                f.get();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        return (System.nanoTime() - a) / 1e6;
    }

    static double time(Step stacked, ModelPack pack) {
        long a = System.nanoTime();
        run(pack, stacked);
        return (System.nanoTime() - a) / 1e6;
    }

    /** One estimator call on the step's inputs; the work is done before the clock stops. */
    static void run(ModelPack pack, Step s) {
        try (PointerScope scope = new PointerScope()) {
            FlowDecoder.call(pack, s).sum().item_float();
        }
    }

    /** Encodes a random hop of {@code fresh} tokens after the prompt, as FlowDecoder does, and builds one step's inputs. */
    static Step inputs(ModelPack pack, SpeakerFeatures spk, int fresh, Random random) {
        var dev = pack.device;
        long[] tokens = new long[fresh];
        for (int i = 0; i < fresh; i++) {
            tokens[i] = random.nextInt(pack.manifest.speechTokenSize());
        }
        long count = (long) spk.tokenLength() + fresh;
        Tensor ids = Tensors.cat(1, spk.speechTokens().to(ScalarType.Long), Tensors.on(Tensors.longs(tokens, 1, fresh), dev));
        IValue enc = Tensors.call(pack.encode, ids, Tensors.on(Tensors.longs(new long[]{count}, 1), dev), spk.speechFeat(),
                Tensors.on(Tensors.longs(new long[]{spk.featFrames()}, 1), dev), spk.embedding());
        Tensor mu = Tensors.element(enc, 0);
        Tensor mask = Tensors.element(enc, 1);
        Tensor spks = Tensors.element(enc, 2);
        Tensor cond = Tensors.element(enc, 3);
        Tensor x = Tensors.tensor(Tensors.call(pack.noise, 2L * count));
        return new Step(Tensors.cat(0, x, x), Tensors.cat(0, mask, mask), Tensors.cat(0, mu, torch.zeros_like(mu)),
                Tensors.on(Tensors.floats(new float[]{0.5f, 0.5f}, 2), dev), Tensors.cat(0, spks, torch.zeros_like(spks)),
                Tensors.cat(0, cond, torch.zeros_like(cond)), null);
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
