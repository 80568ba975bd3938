package io.timbre.engine;

import org.bytedeco.javacpp.Loader;

/**
 * Extracts JavaCPP native directories to the cache before anything loads them. JavaCPP's lazy
 * extract-while-loading crashed the JVM on a cold cache (SIGSEGV in pthread_mutex_lock while dlopen-ing a freshly
 * extracted library), which every fresh clone, CI run and container has. Callers load their presets afterwards.
 */
public final class NativeCache {
    private NativeCache() {
    }

    /**
     * @param what       what is being prepared, for the error message (e.g. "LibTorch")
     * @param preset     a class of the preset whose jar holds the natives
     * @param presetDirs resource directories of that preset, below /org/bytedeco/ (e.g. "pytorch"); each is
     *                   tried for the platform and for its -gpu variant, absent ones extract nothing
     */
    public static void extract(String what, Class<?> preset, String... presetDirs) {
        try {
            String platform = Loader.getPlatform();
            Loader.cacheResources(Loader.class, "/org/bytedeco/javacpp/" + platform + "/");
            for (String dir : presetDirs) {
                Loader.cacheResources(preset, "/org/bytedeco/" + dir + "/" + platform + "/");
                Loader.cacheResources(preset, "/org/bytedeco/" + dir + "/" + platform + "-gpu/");
            }
        } catch (Exception e) {
            throw new IllegalStateException("cannot extract the " + what + " natives to the JavaCPP cache ("
                    + System.getProperty("org.bytedeco.javacpp.cachedir", "~/.javacpp/cache") + "): " + e.getMessage(), e);
        }
    }
}
