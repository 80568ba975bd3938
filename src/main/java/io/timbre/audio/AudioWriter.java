package io.timbre.audio;

import java.io.IOException;

/** Writes mono float samples in some format to a stream, chunk by chunk; {@link #finish()} once at the end. */
public interface AudioWriter extends AutoCloseable {
    /** Encodes the samples and pushes out what is ready. */
    void write(float[] samples) throws IOException;

    /** Writes what is left and any trailer. */
    void finish() throws IOException;

    /** Frees native state, if any. */
    @Override
    void close();
}
