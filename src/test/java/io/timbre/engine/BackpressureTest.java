package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Backpressure covers the whole pipeline: when segments pile up before the flow, no new segment joins the LLM,
 * new requests wait in the bounded queue (visible in the stats), and one more is refused as Busy.
 */
class BackpressureTest {
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
    void aFullFlowStageHoldsNewRequestsInTheBoundedQueueAndRefusesOneMore() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        try (Synthesizer s = new Synthesizer(pack, new Synthesizer.Settings(true, 16, 1, Duration.ofSeconds(600), 1, 1),
                DeviceMemory.forDevice(pack.device, "never", "0"))) {
            s.flowStepHook = (job, step) -> {
                try {
                    release.await();   // the flow worker is stuck until the test lets it go
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            };
            Synthesizer.Options o = new Synthesizer.Options(1, false);
            try (SynthesisJob first = s.submit(Requests.of(tok, spk, List.of("One.", "Two.", "Three."), o))) {
                SchedulerTest.until(() -> s.stats().flowQueued() >= 1, "a segment waiting for the flow");
                try (SynthesisJob second = s.submit(Requests.of(tok, spk, List.of("Four."), o))) {
                    SchedulerTest.until(() -> s.stats().rows() == 0, "the batch to empty");
                    // the first request's rows have left the LLM and the second is still queued: it was not admitted
                    assertEquals(1, s.stats().queued(), "the second request waits in the queue, not in the LLM or flow");
                    assertTrue(s.stats().flowQueued() >= 1, "segments wait for the flow");
                    long refused = s.stats().refused();
                    assertThrows(Synthesizer.Busy.class, () -> s.submit(Requests.of(tok, spk, List.of("Five."), o)));
                    assertEquals(refused + 1, s.stats().refused());
                    release.countDown();
                    assertEquals(3, first.await().segments());
                    assertTrue(second.await().pcm().length > 0, "the held request is served once the flow drains");
                }
            } finally {
                release.countDown();
            }
        }
    }
}
