package io.timbre.engine;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** When each host memory policy calls malloc_trim (the real one: JavaCPP's Pointer.trimMemory()). */
class HostMemoryTest {

    private static void settle(HostMemory m) throws InterruptedException {
        for (int i = 0; i < 500 && m.trimPending(); i++) {
            Thread.sleep(10);
        }
    }

    @Test
    void neverTrims() throws Exception {
        HostMemory m = HostMemory.parse("never", "0");
        for (int i = 0; i < 5; i++) {
            m.requestStarted();
            m.requestFinished();
        }
        settle(m);
        assertEquals(0, m.trims());
    }

    @Test
    void perRequestTrimsAfterEachRequest() throws Exception {
        HostMemory m = HostMemory.parse("per-request", "0");
        for (int i = 0; i < 3; i++) {
            m.requestStarted();
            m.requestFinished();
            settle(m);
        }
        assertEquals(3, m.trims());
        assertTrue(m.trimNanos() > 0);
    }

    @Test
    void idleTrimsOnlyWhenTheLastRequestInFlightFinishes() throws Exception {
        HostMemory m = HostMemory.parse("idle", "0");
        m.requestStarted();
        m.requestStarted();
        m.requestFinished();
        settle(m);
        assertEquals(0, m.trims(), "one request still in flight");
        m.requestFinished();
        settle(m);
        assertEquals(1, m.trims(), "idle");
        assertEquals(0, m.inFlight());
    }

    @Test
    void idleAlsoTrimsPastItsWatermarkWhileBusy() throws Exception {
        HostMemory m = new HostMemory(HostMemory.Policy.IDLE, 1);   // any process is above one byte
        m.requestStarted();
        m.requestStarted();
        m.requestFinished();
        settle(m);
        assertEquals(1, m.trims());
    }

    @Test
    void watermarkTrimsOnlyAboveIt() throws Exception {
        HostMemory high = new HostMemory(HostMemory.Policy.WATERMARK, Long.MAX_VALUE);
        HostMemory low = new HostMemory(HostMemory.Policy.WATERMARK, 1);
        for (HostMemory m : new HostMemory[] {high, low}) {
            m.requestStarted();
            m.requestFinished();
            settle(m);
        }
        assertEquals(0, high.trims());
        assertEquals(1, low.trims());
        assertThrows(IllegalArgumentException.class, () -> HostMemory.parse("watermark", "0"));
        assertThrows(IllegalArgumentException.class, () -> HostMemory.parse("sometimes", "0"));
    }
}
