package io.timbre.audio;

import org.bytedeco.ffmpeg.global.avcodec;
import org.bytedeco.ffmpeg.global.avformat;
import org.bytedeco.ffmpeg.global.avutil;
import org.bytedeco.ffmpeg.global.swresample;
import io.timbre.engine.NativeCache;
import org.bytedeco.javacpp.Loader;

/** Loads FFmpeg's natives once per JVM, extracted first ({@link NativeCache}: a cold cache crashed the JVM). */
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
            NativeCache.extract("FFmpeg", avutil.class, "ffmpeg");
            Loader.load(avutil.class);
            Loader.load(swresample.class);
            Loader.load(avcodec.class);
            Loader.load(avformat.class);
            avutil.av_log_set_level(avutil.AV_LOG_QUIET);
            loaded = true;
        }
    }
}
