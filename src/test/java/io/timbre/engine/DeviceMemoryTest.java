package io.timbre.engine;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The device-memory policies' decisions, against an allocator whose statistics the test controls. */
class DeviceMemoryTest {
    static final class FakeAllocator implements DeviceMemory.Allocator {
        long allocated;
        long reserved;
        final AtomicInteger empties = new AtomicInteger();

        public DeviceMemory.Stats stats() {
            return new DeviceMemory.Stats(allocated, reserved);
        }

        public void emptyCache() {
            empties.incrementAndGet();
            reserved = allocated;   // what emptyCache does: unused cached blocks go back to the driver
        }
    }

    @Test
    void neverEmpties() {
        FakeAllocator a = new FakeAllocator();
        a.reserved = 8L << 30;
        DeviceMemory m = new DeviceMemory(MemoryPolicy.parse("never", ""), a);
        for (int i = 0; i < 10; i++) {
            assertFalse(m.afterRequest());
        }
        assertEquals(0, a.empties.get());
        assertEquals(10, m.decisions());
    }

    @Test
    void perRequestEmptiesOncePerRequest() {
        FakeAllocator a = new FakeAllocator();
        DeviceMemory m = new DeviceMemory(MemoryPolicy.parse("per-request", ""), a);
        for (int i = 0; i < 10; i++) {
            assertTrue(m.afterRequest());
        }
        assertEquals(10, a.empties.get());
        assertEquals(10, m.releases());
    }

    @Test
    void watermarkEmptiesOnlyAboveTheReservedMark() {
        FakeAllocator a = new FakeAllocator();
        DeviceMemory m = new DeviceMemory(MemoryPolicy.parse("watermark", "1g"), a);
        a.allocated = 100L << 20;
        a.reserved = 900L << 20;
        assertFalse(m.afterRequest(), "below the mark");
        a.reserved = 1200L << 20;
        assertTrue(m.afterRequest(), "above the mark");
        assertEquals(a.allocated, a.reserved, "the cache was emptied");
        assertFalse(m.afterRequest(), "back below the mark");
        assertEquals(1, a.empties.get());
    }

    @Test
    void policiesParseAndRejectNonsense() {
        assertEquals(new MemoryPolicy.Watermark(512L << 20), MemoryPolicy.parse("WATERMARK", "512m"));
        assertEquals(123, MemoryPolicy.parseBytes("123"));
        assertThrows(IllegalArgumentException.class, () -> MemoryPolicy.parse("sometimes", ""));
        assertThrows(IllegalArgumentException.class, () -> MemoryPolicy.parse("watermark", "lots"));
    }

    @Test
    void synthesisRunsThePolicyOncePerRequestNotPerSegment() throws Exception {
        FakeAllocator a = new FakeAllocator();
        DeviceMemory memory = new DeviceMemory(MemoryPolicy.parse("per-request", ""), a);
        float[] prompt = java.util.Arrays.copyOf(io.timbre.audio.WavCodec.decode(
                java.nio.file.Files.readAllBytes(Golden.DIR.resolve("tone.wav"))).samples(), 16000);
        try (ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
             io.timbre.text.TextTokenizer tok = new io.timbre.text.TextTokenizer(Golden.PACK.resolve("tokenizer.json"));
             Synthesizer synth = new Synthesizer(pack, 2, memory);
             SpeakerFeatures spk = new FeatureExtractor(pack, tok).extract(prompt, 16000, "Hi.")) {
            Synthesizer.Result r = synth.synthesize(Requests.of(tok, spk, java.util.List.of("A.", "B.", "C.", "D."), new Synthesizer.Options(7, false)));
            assertEquals(4, r.segments());
            assertEquals(1, a.empties.get(), "four segments, one release");
        }
    }
}
