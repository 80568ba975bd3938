package io.timbre.engine;

import java.util.Locale;

/**
 * When to hand the CUDA caching allocator's unused blocks back to the driver (emptyCache). Decided once per
 * request, after all its segments, never per segment: emptying is a device synchronisation and makes the next
 * request pay cudaMalloc again.
 */
public sealed interface MemoryPolicy {

    /** @return true if the cache should be emptied now */
    boolean shouldRelease(DeviceMemory.Stats afterRequest);

    String describe();

    /** Never empty the cache: fastest steady state, memory stays reserved at its high-water mark. */
    record Never() implements MemoryPolicy {
        public boolean shouldRelease(DeviceMemory.Stats s) {
            return false;
        }

        public String describe() {
            return "never";
        }
    }

    /** Empty after every request (what the Python backend does with torch.cuda.empty_cache()). */
    record PerRequest() implements MemoryPolicy {
        public boolean shouldRelease(DeviceMemory.Stats s) {
            return true;
        }

        public String describe() {
            return "per-request";
        }
    }

    /** Empty only when reserved-but-unallocated memory has grown past a watermark. */
    record Watermark(long reservedBytes) implements MemoryPolicy {
        public boolean shouldRelease(DeviceMemory.Stats s) {
            return s.reserved() > reservedBytes;
        }

        public String describe() {
            return "watermark(" + reservedBytes + " bytes)";
        }
    }

    /** Parses "never", "per-request" or "watermark" with a byte size (e.g. "2g", "512m", "1073741824"). */
    static MemoryPolicy parse(String policy, String watermark) {
        switch (policy.trim().toLowerCase(Locale.ROOT)) {
            case "never":
                return new Never();
            case "per-request":
                return new PerRequest();
            case "watermark":
                return new Watermark(parseBytes(watermark));
            default:
                throw new IllegalArgumentException("unknown device memory policy '" + policy + "' (never, per-request, watermark)");
        }
    }

    public static long parseBytes(String s) {
        String v = s.trim().toLowerCase(Locale.ROOT);
        long mul = 1;
        char last = v.isEmpty() ? ' ' : v.charAt(v.length() - 1);
        if (last == 'k' || last == 'm' || last == 'g') {
            mul = last == 'k' ? 1L << 10 : last == 'm' ? 1L << 20 : 1L << 30;
            v = v.substring(0, v.length() - 1);
        }
        try {
            long n = Long.parseLong(v.trim()) * mul;
            if (n < 0) {
                throw new NumberFormatException();
            }
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a byte size: '" + s + "' (e.g. 2g, 512m)");
        }
    }
}
