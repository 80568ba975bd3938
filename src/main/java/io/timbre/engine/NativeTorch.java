package io.timbre.engine;

import org.bytedeco.javacpp.Loader;
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
            loaded = true;
        }
    }
}
