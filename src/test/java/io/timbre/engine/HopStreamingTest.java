package io.timbre.engine;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Chunked streaming in the scheduler on the tiny pack: a segment's tokens go to its {@link HopDecoder} in hops as
 * they are sampled. Observed by events and counters, never by the clock: hops handed to a worker while the
 * segment's LLM row was still generating, chunks per segment, the batch's size.
 */
class HopStreamingTest {
    /** 36 text tokens: the LLM's minimum length (2 per text token, 72) is past the first hop (at most 53 tokens). */
    static final String LONG = "One long sentence, streamed by hop.";

    static TinySpeaker tiny;

    @BeforeAll
    static void load() {
        tiny = TinySpeaker.load();
    }

    @AfterAll
    static void free() {
        tiny.close();
    }

    private Synthesizer synthesizer() {
        return new Synthesizer(tiny.pack, new Synthesizer.Settings(true, 16, 16, Duration.ofSeconds(600), 2),
                DeviceMemory.forDevice(tiny.pack.device, "never", "0"));
    }

    private static List<float[]> chunks(SynthesisJob job) throws InterruptedException {
        List<float[]> out = new ArrayList<>();
        for (float[] a = job.next(); a != null; a = job.next()) {
            out.add(a);
        }
        return out;
    }

    private static float[] join(List<float[]> parts) {
        return SynthesisJob.drain(new java.util.Iterator<float[]>() {
            int i;

            @Override
            public boolean hasNext() {
                return true;
            }

            @Override
            public float[] next() {
                return i < parts.size() ? parts.get(i++) : null;
            }
        }::next);
    }

    @Test
    void chunksLeaveBeforeTheLlmFinishesTheSegmentAndAreTheSameUnderLoad() throws Exception {
        Synthesizer.Options hops = new Synthesizer.Options(3, false, 1.0, true);
        try (Synthesizer s = synthesizer()) {
            List<float[]> alone;
            int tokens;
            try (SynthesisJob job = s.submit(Requests.of(tiny.tok, tiny.spk, List.of(LONG), hops))) {
                alone = chunks(job);
                tokens = job.speechTokens();
                assertTrue(job.hopsWhileGenerating() >= 1, "a hop was handed on while the LLM was generating the segment");
            }
            assertTrue(alone.size() >= 2, "one segment, " + alone.size() + " chunks");
            float[] streamed = join(alone);
            assertEquals(tokens * 2 * tiny.pack.manifest.samplesPerMelFrame(), streamed.length, "two mel frames per token");
            // the same request's tokens as a whole segment: the same LLM output, the audio of the non-streamed flow
            try (SynthesisJob whole = s.submit(Requests.of(tiny.tok, tiny.spk, List.of(LONG), new Synthesizer.Options(3, false)))) {
                float[] pcm = whole.await().pcm();
                assertEquals(tokens, whole.speechTokens(), "hop streaming leaves the LLM's tokens as they are");
                assertEquals(streamed.length, pcm.length);
            }
            // again while two other hop-streamed requests share every decode step and the workers
            List<SynthesisJob> others = new ArrayList<>();
            SynthesisJob[] mine = new SynthesisJob[1];
            long stepsBefore = s.stats().steps();
            long rowStepsBefore = s.stats().rowSteps();
            s.whileHoldingAdmission(() -> {
                others.add(s.submit(Requests.of(tiny.tok, tiny.spk, List.of("Beside it."), new Synthesizer.Options(8, false, 1.0, true))));
                mine[0] = s.submit(Requests.of(tiny.tok, tiny.spk, List.of(LONG), hops));
                others.add(s.submit(Requests.of(tiny.tok, tiny.spk, List.of("A third."), new Synthesizer.Options(9, false))));
            });
            try (SynthesisJob job = mine[0]) {
                List<float[]> loaded = chunks(job);
                assertEquals(alone.size(), loaded.size(), "the same hops");
                for (int i = 0; i < alone.size(); i++) {
                    assertArrayEquals(alone.get(i), loaded.get(i), "hop " + i + " under load");
                }
                assertTrue(job.hopsWhileGenerating() >= 1);
            } finally {
                for (SynthesisJob j : others) {
                    j.await();
                    j.close();
                }
            }
            assertTrue(s.stats().rowSteps() - rowStepsBefore > s.stats().steps() - stepsBefore,
                    "decode steps were shared while hops ran");
        }
    }

    @Test
    void cancellingMidStreamStopsTheHopsAndTheEngineGoesOn() throws Exception {
        try (Synthesizer s = synthesizer()) {
            SynthesisJob job = s.submit(Requests.of(tiny.tok, tiny.spk, List.of(LONG, LONG), new Synthesizer.Options(4, false, 1.0, true)));
            float[] first = job.next();
            assertTrue(first != null && first.length > 0, "the first hop's audio");
            job.cancel();
            assertThrows(SynthesisJob.CancelledException.class, job::next);
            job.close();   // returns once no hop of the job runs any more and its rows left the batch
            long calls = s.stats().vocoderCalls();
            assertTrue(s.synthesize(Requests.of(tiny.tok, tiny.spk, List.of("Still serving."), new Synthesizer.Options(1, false))).pcm().length > 0);
            assertEquals(calls + 1, s.stats().vocoderCalls(), "only the new request's segment was vocoded after the cancel");
        }
    }
}
