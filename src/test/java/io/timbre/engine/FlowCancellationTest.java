package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A request cancelled while its flow runs stops between two Euler steps: no further step, no vocoder, and its
 * other segments never start. Counted in steps (one flow worker, so the count is exact), not in time.
 */
class FlowCancellationTest {
    static final int CANCEL_AT = 3;

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

    @Test
    void aCancelledRequestsFlowStopsBetweenEulerSteps() {
        List<String> segments = List.of("The first long sentence of this request.", "The second long sentence of this request.",
                "The third long sentence of this request.", "The fourth long sentence of this request.");
        int stepsPerSegment = pack.manifest.flowSteps();
        try (Synthesizer s = new Synthesizer(pack, new Synthesizer.Settings(true, 16, 8, Duration.ofSeconds(60), 1),
                DeviceMemory.forDevice(pack.device, "never", "0"))) {
            AtomicInteger steps = new AtomicInteger();
            AtomicLong cancelledAt = new AtomicLong();
            s.flowStepHook = (job, step) -> {
                steps.incrementAndGet();
                if (step == CANCEL_AT && cancelledAt.get() == 0) {
                    cancelledAt.set(System.nanoTime());
                    job.cancel();   // as a client that disconnects mid-flow
                }
            };
            long vocoderBefore = s.stats().vocoderCalls();
            SynthesisJob job = s.submit(Requests.of(tok, spk, segments, new Synthesizer.Options(9, false)));
            assertThrows(SynthesisJob.CancelledException.class, job::await);
            job.close();   // returns once no part of the engine works for the job
            long stoppedMs = (System.nanoTime() - cancelledAt.get()) / 1_000_000;
            assertEquals(CANCEL_AT, steps.get(), "the flow ran no step after the cancel");
            assertEquals(vocoderBefore, s.stats().vocoderCalls(), "no vocoder call after the cancel");
            System.out.printf("flow cancellation: %d of %d Euler steps ran (%d segments x %d); work stopped %d ms after the cancel%n",
                    steps.get(), segments.size() * stepsPerSegment, segments.size(), stepsPerSegment, stoppedMs);
            assertTrue(steps.get() < segments.size() * stepsPerSegment);
        }
    }
}
