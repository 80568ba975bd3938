package io.timbre.synthesis;

import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.timbre.engine.Synthesizer;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/** The stage histograms read whatever durations the engine's per-request timings carry, without the total. */
class LatencyMetricsTest {

    /** A timings shape with a stage the engine may add, and one that is no duration. */
    record WithFlowWait(long queue, long llm, long waitingForFlow, Duration flow, int hops, long total) {
    }

    @Test
    void everyDurationOfTheEnginesTimingsIsAStageButTheTotal() {
        assertEquals(Map.of("queue", 1L, "llm", 2L, "flow_wait", 3L, "flow", 4L, "vocoder", 5L),
                LatencyMetrics.stageNanos(new Synthesizer.Timings(1, 2, 3, 4, 5, 15)));
        Map<String, Long> stages = LatencyMetrics.stageNanos(new WithFlowWait(5, 6, 7, Duration.ofMillis(8), 3, 99));
        assertEquals(List.of("queue", "llm", "waiting_for_flow", "flow"), List.copyOf(stages.keySet()), "declaration order");
        assertEquals(List.of(5L, 6L, 7L, 8_000_000L), List.copyOf(stages.values()));
        assertEquals(Map.of(), LatencyMetrics.stageNanos(null));
    }

    @Test
    void stagesAndFirstAudioAreCountedPerTag() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        LatencyMetrics.stages(registry, 11, new WithFlowWait(5, 6, 7, Duration.ofNanos(8), 3, 99));
        LatencyMetrics.stages(registry, 13, new WithFlowWait(1, 1, 1, Duration.ZERO, 1, 4));
        for (String stage : List.of("features", "queue", "llm", "waiting_for_flow", "flow")) {
            Timer t = registry.find(LatencyMetrics.STAGE).tag("stage", stage).timer();
            assertNotNull(t, stage);
            assertEquals(2, t.count(), stage);
        }
        assertEquals(24, registry.find(LatencyMetrics.STAGE).tag("stage", "features").timer().totalTime(TimeUnit.NANOSECONDS));
        assertEquals(null, registry.find(LatencyMetrics.STAGE).tag("stage", "total").timer(), "the total is timbre.tts");
        assertEquals(null, registry.find(LatencyMetrics.STAGE).tag("stage", "hops").timer(), "a count is no stage");

        LatencyMetrics.firstAudio(registry, "tts", "segment", 1_000_000);
        LatencyMetrics.firstAudio(registry, "tts", "segment", 3_000_000);
        LatencyMetrics.firstAudio(registry, "speech", "hop", 2_000_000);
        Timer seg = registry.find(LatencyMetrics.FIRST_AUDIO).tags("endpoint", "tts", "stream", "segment").timer();
        assertEquals(2, seg.count());
        assertEquals(4.0, seg.totalTime(TimeUnit.MILLISECONDS), 1e-9);
        assertEquals(1, registry.find(LatencyMetrics.FIRST_AUDIO).tags("endpoint", "speech", "stream", "hop").timer().count());
    }
}
