package io.timbre.engine;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.pytorch.Context;
import org.bytedeco.pytorch.global.torch;

/** Loads LibTorch's natives once per JVM, extracted first ({@link NativeCache}: a cold cache crashed the JVM). */
public final class NativeTorch {
    private static volatile boolean loaded;

    private NativeTorch() {
    }

    public static void ensureLoaded() {
        if (loaded) {
            return;
        }
        synchronized (NativeTorch.class) {
            if (loaded) {
                return;
            }
            NativeCache.extract("OpenBLAS", org.bytedeco.openblas.global.openblas.class, "openblas");
            NativeCache.extract("LibTorch", torch.class, "pytorch");
            Loader.load(torch.class);
            // The profiling graph executor re-profiles and re-optimises every new input shape; TTS shapes change
            // with every segment, so it spends seconds re-specialising and grows its cache (javacpp-presets #1409).
            // The simple executor runs the graphs as scripted.
            torch.getProfilingMode().put(false);
            torch.getExecutorMode().put(false);
            deterministicKernels(torch.globalContext());
            loaded = true;
        }
    }

    /**
     * Same request, same audio: kernels are chosen for determinism where LibTorch has a deterministic one
     * ({@code torch.use_deterministic_algorithms(True, warn_only=True)}: an op without one warns instead of failing),
     * cuDNN is deterministic and does not benchmark algorithms per shape (its choice could differ between runs). Not
     * filled: uninitialised memory (the engine never reads a tensor it did not write; filling every allocation costs
     * bandwidth). On CUDA, cuBLAS also needs {@code CUBLAS_WORKSPACE_CONFIG=:4096:8} in the environment before the
     * first CUDA call (the gpu overlay sets it).
     */
    static void deterministicKernels(Context context) {
        context.setDeterministicAlgorithms(true, true);
        context.setDeterministicFillUninitializedMemory(false);
        context.setDeterministicCuDNN(true);
        context.setBenchmarkCuDNN(false);
    }
}
