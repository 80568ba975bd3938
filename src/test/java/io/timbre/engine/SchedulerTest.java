package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The continuous-batching scheduler on the tiny pack: requests that join a running batch at different steps get
 * exactly the audio they get alone (same seed), with batching on or off; a full queue refuses; a cancelled
 * request leaves the batch and frees its rows; segments come out in order; speed stretches the audio.
 */
class SchedulerTest {
    static final String A = "Hello there, first one.";
    static final String B = "A second one joins.";
    static final String C = "第三个。";

    static ModelPack pack;
    static TextTokenizer tok;
    static SpeakerFeatures spk;

    static TinySpeaker tiny;

    @BeforeAll
    static void load() {
        tiny = TinySpeaker.load();
        pack = tiny.pack;
        tok = tiny.tok;
        spk = tiny.spk;
    }

    @AfterAll
    static void free() {
        tiny.close();
    }

    static Synthesizer synthesizer(boolean batching, int maxRows, int maxQueued) {
        return new Synthesizer(pack, new Synthesizer.Settings(batching, maxRows, maxQueued, Duration.ofSeconds(60), 2),
                DeviceMemory.forDevice(pack.device, "per-request", "0"));
    }

    static void until(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(2);
        }
    }

    /** Each request alone, one after the other: the reference. */
    static List<float[]> alone(Synthesizer s, List<String> texts, long seed) {
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            out.add(s.synthesize(Requests.of(tok, spk, texts.get(i), new Synthesizer.Options(seed + i, false))).pcm());
        }
        return out;
    }

    @Test
    void requestsJoiningARunningBatchGetExactlyTheirAloneAudio() throws Exception {
        List<String> texts = List.of(A, B, C);
        try (Synthesizer s = synthesizer(true, 16, 8)) {
            List<float[]> reference = alone(s, texts, 11);
            assertEquals(1, s.stats().largestBatch(), "alone: one row per step");

            long before = s.stats().steps();
            List<SynthesisJob> jobs = new ArrayList<>();
            try {
                for (int i = 0; i < texts.size(); i++) {
                    jobs.add(s.submit(Requests.of(tok, spk, texts.get(i), new Synthesizer.Options(11 + i, false))));
                    long at = s.stats().steps();
                    until(() -> s.stats().steps() >= at + 7, "a few decode steps");   // the next one joins mid-run
                }
                for (int i = 0; i < texts.size(); i++) {
                    assertArrayEquals(reference.get(i), jobs.get(i).await().pcm(), "request " + i + " batched == alone");
                }
            } finally {
                jobs.forEach(SynthesisJob::close);
            }
            Synthesizer.Stats st = s.stats();
            assertEquals(3, st.largestBatch(), "all three shared decode steps");
            assertTrue(st.rowSteps() - before > st.steps() - before, "more rows than steps: steps were shared");
            assertEquals(0, st.rows());
        }
    }

    @Test
    void batchingOffServesOneRequestAtATimeWithTheSameAudio() throws Exception {
        List<String> texts = List.of(A, B);
        List<float[]> reference;
        try (Synthesizer s = synthesizer(true, 16, 8)) {
            reference = alone(s, texts, 5);
        }
        try (Synthesizer s = synthesizer(false, 16, 8)) {
            SynthesisJob first = s.submit(Requests.of(tok, spk, A, new Synthesizer.Options(5, false)));
            SynthesisJob second = s.submit(Requests.of(tok, spk, B, new Synthesizer.Options(6, false)));
            try (first; second) {
                assertArrayEquals(reference.get(0), first.await().pcm());
                assertArrayEquals(reference.get(1), second.await().pcm());
                Synthesizer.Timings t = second.timings();
                assertTrue(t.queue() >= first.timings().total() * 9 / 10,
                        "the second waited for the whole first request: " + t.queue() + " vs " + first.timings().total());
            }
            assertEquals(1, s.stats().largestBatch());
        }
    }

    @Test
    void aFullQueueRefusesWithRetryAfter() throws Exception {
        try (Synthesizer s = synthesizer(true, 1, 1)) {
            SynthesisJob running = s.submit(Requests.of(tok, spk, A, new Synthesizer.Options(1, false)));
            until(() -> s.stats().rows() == 1, "the first request in the batch");
            SynthesisJob queued = s.submit(Requests.of(tok, spk, B, new Synthesizer.Options(2, false)));
            Synthesizer.Busy busy = assertThrows(Synthesizer.Busy.class, () -> s.submit(Requests.of(tok, spk, C, new Synthesizer.Options(3, false))));
            assertTrue(busy.retryAfterSeconds >= 1 && busy.retryAfterSeconds <= 60, "Retry-After " + busy.retryAfterSeconds);
            assertEquals(1, s.stats().refused());
            try (running; queued) {
                assertTrue(running.await().pcm().length > 0);
                assertTrue(queued.await().pcm().length > 0, "the queued request is served afterwards");
            }
            try (SynthesisJob again = s.submit(Requests.of(tok, spk, C, new Synthesizer.Options(3, false)))) {
                assertTrue(again.await().pcm().length > 0, "accepted once the queue has room");
            }
        }
    }

    @Test
    void aRequestCancelledWhileQueuedBehindAFullBatchIsLetGoAtOnce() throws Exception {
        try (Synthesizer s = synthesizer(true, 1, 8)) {
            try (SynthesisJob running = s.submit(Requests.of(tok, spk, String.join(" ", java.util.Collections.nCopies(6, A)), new Synthesizer.Options(1, false)))) {
                until(() -> s.stats().rows() == 1, "the first request in the batch");
                SynthesisJob abandoned = s.submit(Requests.of(tok, spk, C, new Synthesizer.Options(4, false)));
                long t0 = System.nanoTime();
                abandoned.close();   // cancels it; returns once the scheduler has let it go
                assertTrue(System.nanoTime() - t0 < 2_000_000_000L, "a cancelled queued request does not wait for the batch");
                assertEquals(1, s.stats().rows(), "the running request is still in the batch");
                assertTrue(running.await().pcm().length > 0);
            }
            assertEquals(1, s.stats().cancelled());
        }
    }

    @Test
    void aCancelledRequestLeavesTheBatchAtOnceAndOthersGoOn() throws Exception {
        try (Synthesizer s = synthesizer(true, 16, 8)) {
            float[] reference = s.synthesize(Requests.of(tok, spk, B, new Synthesizer.Options(8, false))).pcm();
            SynthesisJob doomed = s.submit(Requests.of(tok, spk, A + " " + A + " " + A, new Synthesizer.Options(7, false)));
            SynthesisJob other = s.submit(Requests.of(tok, spk, B, new Synthesizer.Options(8, false)));
            until(() -> s.stats().rows() >= 2, "both in the batch");
            long steps = s.stats().steps();
            long t0 = System.nanoTime();
            doomed.cancel();
            doomed.close();   // returns once no row or worker of it is left
            long after = s.stats().steps() - steps;
            assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "close returns once nothing of it runs");
            // its longest segment alone would need ~20 steps per text token (hundreds); it left within a few
            assertTrue(after < 25, "dropped at the next step, not at the end of its run: " + after + " steps");
            until(() -> s.stats().rows() <= 1, "only the other request's row to be left");
            assertThrows(SynthesisJob.CancelledException.class, doomed::next);
            try (other) {
                assertArrayEquals(reference, other.await().pcm(), "the other request is unaffected");
            }
            assertEquals(1, s.stats().cancelled());
            assertEquals(0, s.stats().rows());
        }
    }

    @Test
    void segmentsStreamOutInOrderAndJoinToTheWholeClip() throws Exception {
        List<String> text = List.of("First sentence here.", "Second sentence follows it.", "And a third one ends the text.");
        try (Synthesizer s = synthesizer(true, 16, 8)) {
            float[] whole = s.synthesize(Requests.of(tok, spk, text, new Synthesizer.Options(4, false))).pcm();
            try (SynthesisJob job = s.submit(Requests.of(tok, spk, text, new Synthesizer.Options(4, false)))) {
                assertEquals(3, job.segments());
                float[] joined = new float[0];
                int parts = 0;
                for (float[] a = job.next(); a != null; a = job.next()) {
                    int at = joined.length;
                    joined = Arrays.copyOf(joined, at + a.length);
                    System.arraycopy(a, 0, joined, at, a.length);
                    parts++;
                }
                assertEquals(job.segments(), parts);
                assertNull(job.next());
                assertArrayEquals(whole, joined);
            }
        }
    }

    @Test
    void speedStretchesTheMelBeforeTheVocoder() throws Exception {
        try (Synthesizer s = synthesizer(true, 16, 8)) {
            int normal = s.synthesize(Requests.of(tok, spk, B, new Synthesizer.Options(9, false, 1.0))).pcm().length;
            int fast = s.synthesize(Requests.of(tok, spk, B, new Synthesizer.Options(9, false, 2.0))).pcm().length;
            int slow = s.synthesize(Requests.of(tok, spk, B, new Synthesizer.Options(9, false, 0.5))).pcm().length;
            assertEquals(0, normal % 480, "whole vocoder frames");
            assertEquals(normal / 480 / 2, fast / 480, "half the frames at 2x");
            assertEquals(normal / 480 * 2, slow / 480, "twice the frames at 0.5x");
        }
    }
}
