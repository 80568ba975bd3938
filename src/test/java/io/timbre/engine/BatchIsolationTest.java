package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A row the LLM refuses (a speaker whose speech tokens lie outside the vocabulary, as an unchecked import could
 * have held) shares a prefill with two healthy requests: it fails alone with its own error, and its batch-mates'
 * audio is complete and identical to what they get alone.
 */
class BatchIsolationTest {
    static ModelPack pack;
    static TextTokenizer tok;
    static SpeakerFeatures good;
    static SpeakerFeatures bad;

    static TinySpeaker tiny;

    @BeforeAll
    static void load() {
        tiny = TinySpeaker.load();
        pack = tiny.pack;
        tok = tiny.tok;
        good = tiny.spk;
        SpeakerFeatures.Data d = good.data();
        int[] tokens = d.speechTokens().clone();
        tokens[tokens.length / 2] = pack.manifest.speechTokenSize() + 1000;   // what validation would have refused
        bad = new SpeakerFeatures.Data(d.promptText(), tokens, d.speechFeat(), d.embedding()).toFeatures(new Device("cpu"));
    }

    @AfterAll
    static void free() {
        bad.close();
        tiny.close();
    }

    @Test
    void aRowTheLlmRefusesFailsAloneAndItsBatchMatesFinishAsIfAlone() {
        Synthesizer.Options a = new Synthesizer.Options(5, false);
        Synthesizer.Options b = new Synthesizer.Options(6, false);
        try (Synthesizer s = new Synthesizer(pack, new Synthesizer.Settings(true, 16, 8, Duration.ofSeconds(60), 2),
                DeviceMemory.forDevice(pack.device, "never", "0"))) {
            float[] aloneA = s.synthesize(Requests.of(tok, good, List.of("First request."), a)).pcm();
            float[] aloneB = s.synthesize(Requests.of(tok, good, List.of("Second request."), b)).pcm();
            long isolatedBefore = s.stats().isolatedFailures();

            SynthesisJob[] jobs = new SynthesisJob[3];
            s.whileHoldingAdmission(() -> {   // all three are admitted in one join, one prefill
                jobs[0] = s.submit(Requests.of(tok, good, List.of("First request."), a), true);
                jobs[1] = s.submit(Requests.of(tok, bad, List.of("Poisoned request."), a), false);
                jobs[2] = s.submit(Requests.of(tok, good, List.of("Second request."), b), true);
            });
            try {
                float[] sharedA = jobs[0].await().pcm();
                RuntimeException e = assertThrows(RuntimeException.class, () -> jobs[1].await());
                float[] sharedB = jobs[2].await().pcm();
                assertTrue(e.getMessage().contains("could not start"), e.getMessage());
                assertTrue(sharedA.length > 0 && sharedB.length > 0, "batch-mates got audio");
                assertArrayEquals(aloneA, sharedA, "batch-mate A's audio equals its audio alone");
                assertArrayEquals(aloneB, sharedB, "batch-mate B's audio equals its audio alone");
                assertEquals(isolatedBefore + 1, s.stats().isolatedFailures(), "exactly the bad row failed");
            } finally {
                for (SynthesisJob j : jobs) {
                    j.close();
                }
            }
            // the scheduler goes on serving
            assertArrayEquals(aloneA, s.synthesize(Requests.of(tok, good, List.of("First request."), a)).pcm());
        }
    }

    /**
     * A row that goes bad mid-generation (after 5 tokens its decode input is an id outside the vocabulary, which
     * LibTorch's embedding refuses) fails a shared decode step: it leaves the batch alone, with its own error,
     * and its two batch-mates, which shared every step with it until then, finish with their audio alone.
     */
    @Test
    void aRowThatFailsASharedDecodeStepLeavesAloneAndItsBatchMatesFinishAsIfAlone() {
        Synthesizer.Options a = new Synthesizer.Options(5, false);
        Synthesizer.Options b = new Synthesizer.Options(6, false);
        try (Synthesizer s = new Synthesizer(pack, new Synthesizer.Settings(true, 16, 8, Duration.ofSeconds(60), 2),
                DeviceMemory.forDevice(pack.device, "never", "0"))) {
            float[] aloneA = s.synthesize(Requests.of(tok, good, List.of("First request."), a)).pcm();
            float[] aloneB = s.synthesize(Requests.of(tok, good, List.of("Second request."), b)).pcm();
            long isolatedBefore = s.stats().isolatedFailures();
            long stepsBefore = s.stats().steps();

            SynthesisJob[] jobs = new SynthesisJob[3];
            s.whileHoldingAdmission(() -> {   // all three join in one prefill and share every decode step
                jobs[0] = s.submit(Requests.of(tok, good, List.of("First request."), a), true);
                jobs[1] = s.submit(Requests.of(tok, good, List.of("Poisoned mid-way."), a), true);
                jobs[2] = s.submit(Requests.of(tok, good, List.of("Second request."), b), true);
                s.rowHook = (job, row) -> {
                    if (job == jobs[1]) {
                        row.corruptAt = 5;
                    }
                };
            });
            try {
                float[] sharedA = jobs[0].await().pcm();
                RuntimeException e = assertThrows(RuntimeException.class, () -> jobs[1].await());
                float[] sharedB = jobs[2].await().pcm();
                assertTrue(e.getMessage().contains("while generating"), e.getMessage());
                assertTrue(sharedA.length > 0 && sharedB.length > 0, "batch-mates got audio");
                assertArrayEquals(aloneA, sharedA, "batch-mate A's audio equals its audio alone");
                assertArrayEquals(aloneB, sharedB, "batch-mate B's audio equals its audio alone");
                assertEquals(isolatedBefore + 1, s.stats().isolatedFailures(), "exactly the bad row failed");
                assertEquals(3, s.stats().largestBatch(), "the three rows shared decode steps");
                assertTrue(s.stats().steps() - stepsBefore > 5, "the batch-mates went on after the failed step");
            } finally {
                s.rowHook = (job, row) -> { };
                for (SynthesisJob j : jobs) {
                    j.close();
                }
            }
            // the scheduler goes on serving, with the same audio
            assertArrayEquals(aloneB, s.synthesize(Requests.of(tok, good, List.of("Second request."), b)).pcm());
        }
    }

    /** A decode step whose only row fails (so nothing tells row from engine) fails that row, and the scheduler goes on. */
    @Test
    void aLoneRowThatFailsItsDecodeFailsWithItsOwnErrorAndTheSchedulerGoesOn() {
        Synthesizer.Options a = new Synthesizer.Options(5, false);
        try (Synthesizer s = new Synthesizer(pack, new Synthesizer.Settings(true, 16, 8, Duration.ofSeconds(60), 1),
                DeviceMemory.forDevice(pack.device, "never", "0"))) {
            s.rowHook = (job, row) -> row.corruptAt = 3;
            SynthesisJob bad1 = s.submit(Requests.of(tok, good, List.of("Poisoned."), a), true);
            try (bad1) {
                assertThrows(RuntimeException.class, bad1::await);
            }
            s.rowHook = (job, row) -> { };
            assertTrue(s.synthesize(Requests.of(tok, good, List.of("First request."), a)).pcm().length > 0, "the scheduler still serves");
            assertEquals(0, s.stats().rows(), "no row left behind");
        }
    }

    @Test
    void submitRefusesFeaturesWithIdsOutsideTheVocabulary() {
        try (Synthesizer s = new Synthesizer(pack, Synthesizer.Settings.defaults(1), DeviceMemory.forDevice(pack.device, "never", "0"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> s.submit(Requests.of(tok, bad, List.of("Poisoned request."), new Synthesizer.Options(1, false))));
            assertTrue(e.getMessage().contains("outside the pack's vocabulary"), e.getMessage());
        }
    }
}
