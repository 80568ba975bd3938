package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A request's own random generator: a LibTorch CPU generator (mt19937, the generator behind {@code torch.manual_seed})
 * that no other request and no other thread draws from, so the same seed gives the same draws whatever runs beside
 * it. {@code new RandomSource(s)} draws exactly what Python's {@code torch.manual_seed(s)} followed by the same
 * {@code torch.rand}/{@code torch.randn} calls on the CPU draws. Single-threaded: one owner at a time (the request's
 * segment). Owns the native generator; {@link #close()} frees it (idempotent).
 */
public final class RandomSource implements AutoCloseable {
    private final Generator generator;
    private final GeneratorOptional option;
    private final long seed;
    private final AtomicBoolean closed = new AtomicBoolean();

    public RandomSource(long seed) {
        NativeTorch.ensureLoaded();
        this.seed = seed;
        try (PointerScope scope = new PointerScope()) {   // outlives whatever scope the caller has open
            this.generator = torch.createCPUGenerator(seed);
            this.option = new GeneratorOptional(generator);
            generator.retainReference();
            option.retainReference();
        }
    }

    /** The generator of segment {@code segment} of a request seeded with {@code seed}: distinct per segment. */
    public static RandomSource forSegment(long seed, int segment) {
        return new RandomSource(segmentSeed(seed, segment));
    }

    /** SplitMix64 of (seed, segment): neighbouring seeds and segments give unrelated generator seeds. */
    public static long segmentSeed(long seed, int segment) {
        long z = seed + 0x9E3779B97F4A7C15L * (segment + 1L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public long seed() {
        return seed;
    }

    /** float32 uniform in [0, 1) on the CPU ({@code torch.rand(shape, generator=g)}), in the caller's scope. */
    public Tensor uniform(long... shape) {
        check();
        return torch.rand(shape, option);
    }

    /** float32 standard normal on the CPU ({@code torch.randn(shape, generator=g)}), in the caller's scope. */
    public Tensor normal(long... shape) {
        check();
        return torch.randn(shape, option);
    }

    /**
     * float32 standard normal [b, h, n] whose memory is filled in the order of its [b, n, h] transpose, as
     * {@code torch.randn_like(x)} fills an x that is a transposed [b, h, n] tensor (CosyVoice's SineGen noise):
     * a non-contiguous fill draws element by element, a contiguous {@code randn} in blocks of 16, so the two give
     * different numbers from the same generator state.
     */
    public Tensor normalTransposed(long b, long h, long n) {
        check();
        Tensor x = torch.zeros(b, h, n);
        x.transpose(1, 2).normal_(0.0, 1.0, option);
        return x;
    }

    private void check() {
        if (closed.get()) {
            throw new IllegalStateException("RandomSource is closed");
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        option.releaseReference();
        generator.releaseReference();
    }
}
