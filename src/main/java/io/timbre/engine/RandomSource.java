package io.timbre.engine;

import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The random draws of one segment of one request: a LibTorch CPU generator (mt19937, the same engine and draws
 * as {@code torch.manual_seed(seed)} followed by the same calls) seeded from the request's seed and the segment's
 * index, so a segment's noise depends on nothing else that runs in the process. One thread at a time: the runner
 * hands it to the segment's vocoder (and, for chunked streaming, to its hop decoder, which draws in hop order).
 * Owns its generator; {@link #close()} frees it and is idempotent.
 */
public final class RandomSource implements AutoCloseable {
    private final long seed;
    private Generator generator;   // made at the first draw: packs whose vocoder draws nothing never need one
    private boolean closed;

    private RandomSource(long seed) {
        this.seed = seed;
    }

    /** The source of segment {@code segment} of a request with seed {@code requestSeed}. */
    public static RandomSource forSegment(long requestSeed, int segment) {
        return new RandomSource(segmentSeed(requestSeed, segment));
    }

    /** A source with exactly this seed (conformance: CosyVoice's {@code torch.manual_seed(seed)}). */
    public static RandomSource seeded(long seed) {
        return new RandomSource(seed);
    }

    /** Each segment gets its own stream derived from the request seed, independent of scheduling. */
    static long segmentSeed(long seed, int segment) {
        return seed * 0x9E3779B97F4A7C15L + segment * 0xBF58476D1CE4E5B9L + 1;
    }

    public long seed() {
        return seed;
    }

    /** Uniform [0, 1) float32 of this shape, attached to the caller's PointerScope. */
    public Tensor rand(long... shape) {
        return torch.rand(shape, new GeneratorOptional(generator()), new TensorOptions(ScalarType.Float));
    }

    /** Standard normal float32 of this shape, attached to the caller's PointerScope. */
    public Tensor randn(long... shape) {
        return torch.randn(shape, new GeneratorOptional(generator()), new TensorOptions(ScalarType.Float));
    }

    private Generator generator() {
        if (closed) {
            throw new IllegalStateException("the random source is closed");
        }
        if (generator == null) {
            NativeTorch.ensureLoaded();
            generator = torch.createCPUGenerator(seed);
            generator.retainReference();   // owned here, not by whatever PointerScope is open at the first draw
        }
        return generator;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (generator != null) {
            generator.releaseReference();
            generator = null;
        }
    }
}
