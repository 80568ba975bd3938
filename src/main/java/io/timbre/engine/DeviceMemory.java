package io.timbre.engine;

import org.bytedeco.pytorch.Device;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The memory side of the engine: reads allocated/reserved bytes of the CUDA caching allocator (zero on
 * CPU), and applies a {@link MemoryPolicy} once per request; the host's malloc is trimmed by its own policy
 * ({@link HostMemory}) at the same moment, on every device.
 */
public final class DeviceMemory {
    public record Stats(long allocated, long reserved) {
    }

    /** What the allocator can do; the CUDA one talks to LibTorch, tests and CPU use others. */
    public interface Allocator {
        Stats stats();

        void emptyCache();
    }

    private final MemoryPolicy policy;
    private final Allocator allocator;
    private final AtomicLong decisions = new AtomicLong();
    private final AtomicLong releases = new AtomicLong();
    private final HostMemory host;

    public DeviceMemory(MemoryPolicy policy, Allocator allocator) {
        this(policy, allocator, HostMemory.never());
    }

    public DeviceMemory(MemoryPolicy policy, Allocator allocator, HostMemory host) {
        this.policy = policy;
        this.allocator = allocator;
        this.host = host;
    }

    public static DeviceMemory forDevice(Device device, String policy, String watermark) {
        return forDevice(device, policy, watermark, HostMemory.never());
    }

    public static DeviceMemory forDevice(Device device, String policy, String watermark, HostMemory host) {
        MemoryPolicy p = MemoryPolicy.parse(policy, watermark);
        return new DeviceMemory(p, device.is_cuda() ? new CudaAllocator(device.index()) : new NoAllocator(), host);
    }

    /** Called once when a request is admitted (the host policy's idle tracking). */
    public void beforeRequest() {
        host.requestStarted();
    }

    /** Called once when a request's last segment is done. @return true if the CUDA cache was emptied */
    public boolean afterRequest() {
        decisions.incrementAndGet();
        host.requestFinished();
        if (policy.shouldRelease(allocator.stats())) {
            allocator.emptyCache();
            releases.incrementAndGet();
            return true;
        }
        return false;
    }

    public Stats stats() {
        return allocator.stats();
    }

    public long decisions() {
        return decisions.get();
    }

    public long releases() {
        return releases.get();
    }

    public MemoryPolicy policy() {
        return policy;
    }

    /** CPU: LibTorch's CPU allocator keeps no cache to empty. */
    static final class NoAllocator implements Allocator {
        public Stats stats() {
            return new Stats(0, 0);
        }

        public void emptyCache() {
        }
    }

    /** The CUDA caching allocator through torch_cuda (only touched on a CUDA device: the gpu build's natives). */
    static final class CudaAllocator implements Allocator {
        private final byte index;

        CudaAllocator(byte index) {
            this.index = index < 0 ? 0 : index;
        }

        public Stats stats() {
            var s = org.bytedeco.pytorch.global.torch_cuda.getAllocator().getDeviceStats(index);
            return new Stats(s.allocated_bytes().current(), s.reserved_bytes().current());
        }

        public void emptyCache() {
            org.bytedeco.pytorch.global.torch_cuda.getAllocator().emptyCache();
        }
    }
}
