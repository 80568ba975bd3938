package io.timbre.engine;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.pytorch.global.torch;

/**
 * Loads LibTorch's natives once per JVM. JavaCPP extracts them lazily while loading, and the first load of
 * pytorch 2.10.0-1.5.13 from a cold cache crashes the JVM (SIGSEGV in pthread_mutex_lock while dlopen-ing a
 * freshly extracted libtorch_cpu.so). Extracting every native directory first, then loading, avoids it.
 */
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
            try {
                String platform = Loader.getPlatform();
                Loader.cacheResources(Loader.class, "/org/bytedeco/javacpp/" + platform + "/");
                Loader.cacheResources(org.bytedeco.openblas.global.openblas.class, "/org/bytedeco/openblas/" + platform + "/");
                // the CPU jar's natives, or the gpu profile's (linux-x86_64-gpu); the absent one extracts nothing
                Loader.cacheResources(torch.class, "/org/bytedeco/pytorch/" + platform + "/");
                Loader.cacheResources(torch.class, "/org/bytedeco/pytorch/" + platform + "-gpu/");
            } catch (Exception e) {
                throw new IllegalStateException("cannot extract the LibTorch natives to the JavaCPP cache ("
                        + System.getProperty("org.bytedeco.javacpp.cachedir", "~/.javacpp/cache") + "): " + e.getMessage(), e);
            }
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
