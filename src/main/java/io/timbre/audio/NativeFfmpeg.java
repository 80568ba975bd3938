package io.timbre.audio;

import org.bytedeco.ffmpeg.global.avcodec;
import org.bytedeco.ffmpeg.global.avformat;
import org.bytedeco.ffmpeg.global.avutil;
import org.bytedeco.ffmpeg.global.swresample;
import org.bytedeco.javacpp.Loader;

/**
 * Loads FFmpeg's natives once per JVM. As with LibTorch (see {@code io.timbre.engine.NativeTorch}), every native
 * directory is extracted to the JavaCPP cache first and loaded afterwards: JavaCPP's lazy extract-while-loading
 * has crashed the JVM on a cold cache.
 */
public final class NativeFfmpeg {
    private static volatile boolean loaded;

    private NativeFfmpeg() {
    }

    public static void ensureLoaded() {
        if (loaded) {
            return;
        }
        synchronized (NativeFfmpeg.class) {
            if (loaded) {
                return;
            }
            try {
                String platform = Loader.getPlatform();
                Loader.cacheResources(Loader.class, "/org/bytedeco/javacpp/" + platform + "/");
                Loader.cacheResources(avutil.class, "/org/bytedeco/ffmpeg/" + platform + "/");
            } catch (Exception e) {
                throw new IllegalStateException("cannot extract the FFmpeg natives to the JavaCPP cache ("
                        + System.getProperty("org.bytedeco.javacpp.cachedir", "~/.javacpp/cache") + "): " + e.getMessage(), e);
            }
            Loader.load(avutil.class);
            Loader.load(swresample.class);
            Loader.load(avcodec.class);
            Loader.load(avformat.class);
            avutil.av_log_set_level(avutil.AV_LOG_ERROR);
            loaded = true;
        }
    }
}
