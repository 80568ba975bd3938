package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Flow batching across requests ({@link FlowBatcher}) on the tiny pack: flows in progress together share every
 * estimator call, each gets the mel it gets alone (to float rounding), flows that cannot share (different lengths on a
 * pack that does not declare its estimator padding-invariant) never do, and a failed stacked call fails only the run
 * whose own call fails. Stacking is forced without timers: the test holds one extra flow "in progress"
 * ({@link FlowBatcher#begin}) until the flows under test have queued their first step.
 * CosyVoice2StreamingConformanceTest streams upstream's cases through one batcher against upstream's output.
 */
class FlowBatcherTest {
    /**
     * A stacked flow's mel against the same flow alone (|mel| up to ~4): measured max 4.8e-6 on the tiny pack
     * (10 Euler steps, 3 runs stacked); the bench pack's single estimator step differs by 2e-6, the full-size
     * CosyVoice 2 estimator's by 3e-7 (padded to other lengths included). Bound: 5e-5.
     */
    static final float STACKED_TOL = 5e-5f;

    static TinySpeaker tiny;

    @BeforeAll
    static void load() {
        tiny = TinySpeaker.load();
    }

    @AfterAll
    static void free() {
        tiny.close();
    }

    static int[] tokens(int n, int seed) {
        java.util.Random r = new java.util.Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(tiny.pack.manifest.speechTokenSize());
        }
        return t;
    }

    /** Decodes each token list on its own thread through the batcher, all queued before the first call; mel per run. */
    static List<float[]> together(FlowBatcher batcher, List<int[]> runs) throws Exception {
        return startedTogether(batcher, runs.stream().map(t -> decode(new FlowDecoder(tiny.pack, batcher), t)).toList(), 5);
    }

    /**
     * Runs each task on its own thread with the batcher held "in progress" ({@link FlowBatcher#begin}) until every
     * task has queued a flow step, so that their first steps share one call; their results, in order.
     */
    static <T> List<T> startedTogether(FlowBatcher batcher, List<Callable<T>> tasks, long timeoutMinutes) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
        try {
            List<Future<T>> out = new ArrayList<>();
            batcher.begin();
            try {
                for (Callable<T> task : tasks) {
                    out.add(pool.submit(task));
                }
                long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(timeoutMinutes);
                while (batcher.waiting() < tasks.size()) {
                    assertTrue(System.nanoTime() < deadline, "the tasks did not all queue a flow step");
                    Thread.sleep(5);
                }
            } finally {
                batcher.end();
            }
            List<T> results = new ArrayList<>();
            for (Future<T> f : out) {
                results.add(f.get(timeoutMinutes, TimeUnit.MINUTES));
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    static Callable<float[]> decode(FlowDecoder flow, int[] t) {
        return () -> {
            try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                return Tensors.toFloats(flow.decode(tiny.spk, t));
            }
        };
    }

    static float[] alone(int[] t) throws Exception {
        return decode(new FlowDecoder(tiny.pack), t).call();
    }

    @Test
    void flowsInProgressTogetherShareEveryCallAndGetTheirOwnMel() throws Exception {
        List<int[]> runs = List.of(tokens(40, 1), tokens(40, 2), tokens(40, 3));
        FlowBatcher batcher = new FlowBatcher(tiny.pack, 4);
        List<float[]> mels = together(batcher, runs);
        int steps = tiny.pack.manifest.flowSteps();
        assertEquals(3L * steps, batcher.steps(), "every run's every step served");
        assertEquals(steps, batcher.calls(), "one call per Euler step for all three runs");
        float worst = 0;
        for (int i = 0; i < runs.size(); i++) {
            float[] alone = alone(runs.get(i));
            assertEquals(alone.length, mels.get(i).length);
            worst = Math.max(worst, Golden.maxAbsDiff(alone, mels.get(i)));
        }
        System.out.printf("stacked flows vs alone: max |mel diff| %.3g (tolerance %.1g)%n", worst, STACKED_TOL);
        assertTrue(worst <= STACKED_TOL, "stacked mel differs from the run alone by " + worst);
        assertFalse(Arrays.equals(mels.get(0), mels.get(1)), "each run got its own rows");
    }

    @Test
    void flowsOfDifferentLengthsShareNoCallUnlessThePackIsPaddingInvariant() throws Exception {
        assertFalse(tiny.pack.manifest.flowPaddingInvariant(), "the tiny pack's own nets normalise over all frames");
        List<int[]> runs = List.of(tokens(40, 4), tokens(30, 5));
        FlowBatcher batcher = new FlowBatcher(tiny.pack, 4);
        List<float[]> mels = together(batcher, runs);
        assertEquals(batcher.steps(), batcher.calls(), "no call stacked runs of different lengths");
        for (int i = 0; i < runs.size(); i++) {
            // a run alone takes the unbatched path: the same bytes
            assertTrue(Arrays.equals(alone(runs.get(i)), mels.get(i)), "run " + i + " alone in every call: unbatched bytes");
        }
    }

    @Test
    void aFailedStackedCallFailsOnlyTheRunWhoseOwnCallFails() throws Exception {
        FlowBatcher batcher = new FlowBatcher(tiny.pack, 4);
        long frames = 2L * (tiny.spk.tokenLength() + 20);
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            FlowDecoder.Step good = step(frames, 80, 0.3f);
            FlowDecoder.Step bad = step(frames, 79, 0.3f);   // a speaker vector of the wrong width: its own call fails too
            Tensor want = FlowDecoder.call(tiny.pack, good);
            for (int i = 0; i < 3; i++) {
                batcher.begin();
            }
            List<Future<Tensor>> out = new ArrayList<>();
            for (FlowDecoder.Step s : List.of(good, bad, good)) {
                out.add(pool.submit(() -> {
                    try (PointerScope own = new PointerScope(); InferenceMode m = new InferenceMode()) {
                        Tensor v = batcher.estimate(s);
                        v.retainReference();   // handed to the test's scope below
                        return v;
                    } finally {
                        batcher.end();
                    }
                }));
            }
            Exception failure = assertThrows(java.util.concurrent.ExecutionException.class, () -> out.get(1).get(5, TimeUnit.MINUTES));
            assertTrue(failure.getCause() instanceof RuntimeException, "the bad run's own error: " + failure.getCause());
            for (int i : new int[]{0, 2}) {
                Tensor v = out.get(i).get(5, TimeUnit.MINUTES);
                scope.attach(v);
                v.releaseReference();
                assertEquals(0f, Golden.maxAbsDiff(Tensors.toFloats(want), Tensors.toFloats(v)), "run " + i + " served alone after the retry");
            }
            assertEquals(1, batcher.retried(), "the stacked call failed once and was retried run by run");
        } finally {
            pool.shutdownNow();
        }
    }

    /** One estimator step's inputs (CFG pair) of the given length, speaker width and time. */
    static FlowDecoder.Step step(long frames, int spkWidth, float t) {
        var dev = tiny.pack.device;
        Tensor x = torch.randn(new long[]{2, 80, frames});
        Tensor mask = torch.ones(new long[]{2, 1, frames});
        Tensor mu = torch.randn(new long[]{2, 80, frames}).mul(new Scalar(0.5));
        Tensor spks = torch.randn(new long[]{2, spkWidth});
        Tensor cond = torch.zeros(new long[]{2, 80, frames});
        Tensor tt = Tensors.on(Tensors.floats(new float[]{t, t}, 2), dev);
        return new FlowDecoder.Step(x, mask, mu, tt, spks, cond, null);
    }

    @Test
    void theEngineStacksConcurrentRequestsFlowsAndEachGetsItsAudio() throws Exception {
        Synthesizer.Options hops = new Synthesizer.Options(5, false, 1.0, true);
        float[] alone;
        try (Synthesizer s = new Synthesizer(tiny.pack, new Synthesizer.Settings(true, 16, 16, Duration.ofSeconds(600), 2, 8, 1),
                DeviceMemory.forDevice(tiny.pack.device, "never", "0"))) {
            alone = s.synthesize(Requests.of(tiny.tok, tiny.spk, List.of(HopStreamingTest.LONG), hops)).pcm();
        }
        try (Synthesizer s = new Synthesizer(tiny.pack, new Synthesizer.Settings(true, 16, 16, Duration.ofSeconds(600), 2, 8, 3),
                DeviceMemory.forDevice(tiny.pack.device, "never", "0"))) {
            List<SynthesisJob> jobs = new ArrayList<>();
            s.whileHoldingAdmission(() -> {
                for (int i = 0; i < 3; i++) {
                    jobs.add(s.submit(Requests.of(tiny.tok, tiny.spk, List.of(HopStreamingTest.LONG), hops)));
                }
            });
            for (SynthesisJob job : jobs) {
                try (job) {
                    float[] pcm = job.await().pcm();
                    assertEquals(alone.length, pcm.length, "the same tokens, the same samples");
                    float d = Golden.maxAbsDiff(alone, pcm);
                    System.out.printf("request with flows stacked vs alone: max |sample diff| %.3g%n", d);
                    assertTrue(d <= STACKED_TOL, "stacked request differs from alone by " + d);
                }
            }
            Synthesizer.Stats st = s.stats();
            System.out.printf("engine flow batching: %d estimator calls for %d steps%n", st.estimatorCalls(), st.flowSteps());
            assertTrue(st.estimatorCalls() < st.flowSteps(), "some estimator calls served several requests' flows");
        }
    }
}
