package io.timbre.engine;

import org.bytedeco.javacpp.Pointer;
import org.jboss.logging.Logger;

import java.util.Locale;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Hands memory that LibTorch freed back to the operating system, by policy, as {@link DeviceMemory} does for the
 * CUDA cache. LibTorch's CPU tensors come from glibc malloc, which keeps freed memory in its arenas: resident memory
 * then ratchets up with every request larger than the ones before (live memory stays flat). {@code malloc_trim}
 * (JavaCPP's {@link Pointer#trimMemory()}) returns it. It runs on its own daemon thread, never on a request's, and
 * at most one is pending at a time.
 *
 * <ul>
 *   <li>{@code never}: leave it to malloc.</li>
 *   <li>{@code per-request}: after every request.</li>
 *   <li>{@code watermark}: after a request that leaves resident memory above the watermark.</li>
 *   <li>{@code idle}: when the last request in flight finishes, and also past the watermark if one is set (so a
 *       service that is never idle is still bounded).</li>
 * </ul>
 */
public final class HostMemory {
    private static final Logger LOG = Logger.getLogger(HostMemory.class);

    public enum Policy {
        NEVER, PER_REQUEST, WATERMARK, IDLE;

        public static Policy parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "never" -> NEVER;
                case "per-request" -> PER_REQUEST;
                case "watermark" -> WATERMARK;
                case "idle" -> IDLE;
                default -> throw new IllegalArgumentException("unknown host memory policy '" + s + "' (never, per-request, watermark, idle)");
            };
        }

        public String describe() {
            return name().toLowerCase(Locale.ROOT).replace('_', '-');
        }
    }

    private final Policy policy;
    private final long watermarkBytes;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicBoolean pending = new AtomicBoolean();
    private final AtomicLong trims = new AtomicLong();
    private final AtomicLong trimNanos = new AtomicLong();
    private final AtomicLong released = new AtomicLong();

    /** @param watermarkBytes resident bytes above which {@code watermark} and {@code idle} trim; 0: none */
    public HostMemory(Policy policy, long watermarkBytes) {
        if (policy == Policy.WATERMARK && watermarkBytes <= 0) {
            throw new IllegalArgumentException("the watermark host memory policy needs a watermark, e.g. 2g");
        }
        this.policy = policy;
        this.watermarkBytes = watermarkBytes;
    }

    /** @param watermark a byte size ("2g", "512m") or "0" for none */
    public static HostMemory parse(String policy, String watermark) {
        return new HostMemory(Policy.parse(policy), MemoryPolicy.parseBytes(watermark));
    }

    public static HostMemory never() {
        return new HostMemory(Policy.NEVER, 0);
    }

    /** A request was admitted. */
    public void requestStarted() {
        inFlight.incrementAndGet();
    }

    /** A request is done (its native memory freed by its scopes): trim now if the policy says so. */
    public void requestFinished() {
        int left = Math.max(0, inFlight.decrementAndGet());
        boolean trim = switch (policy) {
            case NEVER -> false;
            case PER_REQUEST -> true;
            case WATERMARK -> residentBytes() > watermarkBytes;
            case IDLE -> left == 0 || (watermarkBytes > 0 && residentBytes() > watermarkBytes);
        };
        if (trim) {
            trimSoon();
        }
    }

    private void trimSoon() {
        if (!pending.compareAndSet(false, true)) {
            return;   // one is already on its way; it will see this request's frees too
        }
        Thread t = new Thread(() -> {
            try {
                trimNow();
            } finally {
                pending.set(false);
            }
        }, "timbre-malloc-trim");
        t.setDaemon(true);
        t.start();
    }

    /** Trims at once on this thread; returns the resident bytes it gave back (0 if it could not tell). */
    public long trimNow() {
        long before = residentBytes();
        long t0 = System.nanoTime();
        try {
            Pointer.trimMemory();
        } catch (Throwable e) {   // no glibc (e.g. musl): nothing to trim, keep serving
            LOG.debugf("malloc_trim unavailable: %s", e.toString());
            return 0;
        }
        trimNanos.addAndGet(System.nanoTime() - t0);
        trims.incrementAndGet();
        long freed = Math.max(0, before - residentBytes());
        released.addAndGet(freed);
        return freed;
    }

    /** The process's resident memory (VmRSS), as JavaCPP reads it. */
    public static long residentBytes() {
        return Pointer.physicalBytes();
    }

    public Policy policy() {
        return policy;
    }

    public String describe() {
        return policy.describe() + (watermarkBytes > 0 ? "(" + watermarkBytes + " bytes)" : "");
    }

    public long trims() {
        return trims.get();
    }

    /** Time spent in malloc_trim, summed. */
    public long trimNanos() {
        return trimNanos.get();
    }

    /** Resident bytes the trims gave back, summed. */
    public long releasedBytes() {
        return released.get();
    }

    /** True while a trim is on its way. */
    public boolean trimPending() {
        return pending.get();
    }

    public int inFlight() {
        return inFlight.get();
    }
}
