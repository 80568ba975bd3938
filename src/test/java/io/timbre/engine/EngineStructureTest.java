package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The engine's structure where it is behaviour: a request's job is a passive handle (its cancel is a flag that the
 * scheduler reads; the job holds and calls nothing of the engine), the scheduler owns the request state (it lets go
 * of a cancelled queued request and of its queued chunk work), and tokenizing happens in front of the engine (the
 * engine is built and fed without a tokenizer, with token ids only). No model runs here: a scheduler, jobs and a
 * chunk queue, driven by hand as the runner drives them.
 */
class EngineStructureTest {
    private static final Set<Class<?>> ENGINE = Set.of(Synthesizer.class, Scheduler.class, Runner.class, ChunkWorkers.class,
            Engine.class);

    private static SynthesisJob job(int segments) {
        PackManifest m = PackManifest.read(Golden.PACK);
        List<SpeechLm.Input> inputs = new ArrayList<>();
        for (int i = 0; i < segments; i++) {
            inputs.add(new SpeechLm.Input(new long[]{1}, new long[]{2, 3}, new long[]{4}, Sampler.greedy(m), 10));
        }
        return new SynthesisJob(null, inputs, 1, 1.0, false, m.outputSampleRate());
    }

    private static Scheduler scheduler(LinkedBlockingQueue<Runnable> chunks) {
        return new Scheduler(new Synthesizer.Settings(true, 4, 4, Duration.ofSeconds(60), 1),
                DeviceMemory.forDevice(new Device("cpu"), "never", "0"), chunks);
    }

    @Test
    void aJobHoldsNothingOfTheEngineAndItsCancelIsAFlag() {
        for (Field f : SynthesisJob.class.getDeclaredFields()) {
            assertFalse(ENGINE.contains(f.getType()), "SynthesisJob." + f.getName() + " refers to the engine");
        }
        for (Constructor<?> c : SynthesisJob.class.getDeclaredConstructors()) {
            assertTrue(Arrays.stream(c.getParameterTypes()).noneMatch(ENGINE::contains), "a job is built without the engine");
        }
        SynthesisJob job = job(2);
        job.cancel();
        assertTrue(job.cancelled());
        assertThrows(SynthesisJob.CancelledException.class, () -> job.next(1));
        job.cancel();   // again: nothing happens, nothing is called
        assertTrue(job.cancelled());
    }

    @Test
    void theSchedulerLetsGoOfACancelledQueuedRequestAndReleasesItsJob() throws Exception {
        Scheduler s = scheduler(new LinkedBlockingQueue<>());
        SynthesisJob cancelled = job(3);
        SynthesisJob kept = job(1);
        s.enqueue(cancelled);
        s.enqueue(kept);
        assertEquals(2, s.queued());
        cancelled.cancel();   // a flag: the scheduler sees it when the runner next asks for work
        assertEquals(2, s.queued(), "cancel does not call the scheduler");
        List<Scheduler.Admission> admitted = s.admissions(0);
        assertEquals(List.of(new Scheduler.Admission(kept, 0)), admitted, "only the live request joins");
        assertEquals(0, s.queued());
        assertEquals(1, s.cancelled(), "counted as a client's cancel");
        cancelled.close();   // returns at once: the scheduler has released it
        s.settle(kept, 0);
        kept.close();
        s.stop();
        assertEquals(null, s.admissions(0), "a stopped scheduler admits nothing");
    }

    @Test
    void aCancelledJobsQueuedChunkWorkIsDroppedByTheScheduler() throws Exception {
        LinkedBlockingQueue<Runnable> chunks = new LinkedBlockingQueue<>();
        Scheduler s = scheduler(chunks);
        SynthesisJob job = job(2);
        s.enqueue(job);
        assertEquals(2, s.admissions(0).size());
        AtomicInteger ran = new AtomicInteger();
        chunks.add(new Scheduler.SegmentWork(job, 0, ran::incrementAndGet));
        chunks.add(new Scheduler.SegmentWork(job, 1, ran::incrementAndGet));
        job.cancel();
        assertTrue(s.admissions(0).isEmpty());
        assertTrue(chunks.isEmpty(), "the cancelled job's work left the chunk queue");
        assertEquals(0, ran.get(), "and never ran");
        job.close();   // every segment settled by the scheduler: returns at once
        s.stop();
    }

    @Test
    void theEngineTakesTokenIdsOnlyAndNeedsNoTokenizer() throws Exception {
        for (Constructor<?> c : Synthesizer.class.getConstructors()) {
            assertTrue(Arrays.stream(c.getParameterTypes()).noneMatch(TextTokenizer.class::equals),
                    "the synthesizer is built without a tokenizer");
        }
        List<Method> submits = Arrays.stream(Synthesizer.class.getMethods())
                .filter(m -> m.getName().equals("submit") || m.getName().equals("synthesize")).toList();
        assertFalse(submits.isEmpty());
        for (Method m : submits) {
            assertEquals(List.of(SpeechRequest.class), List.of(m.getParameterTypes()), m + " takes a tokenized request");
        }
        for (var c : SpeechRequest.class.getRecordComponents()) {
            assertFalse(c.getType() == String.class || c.getGenericType().getTypeName().contains("String"),
                    "a request carries no text: " + c.getName());
        }
        assertThrows(IllegalArgumentException.class, () -> new SpeechRequest(null, List.of(), new Synthesizer.Options(1, true)),
                "nothing to speak is refused before the engine");
        assertTrue(Modifier.isPublic(SpeechRequest.class.getModifiers()));
        assertNotNull(SpeechSynthesis.class.getMethod("tokenize", String.class).getReturnType());
    }
}
