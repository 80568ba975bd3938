package io.timbre.audio;

/**
 * Mono audio as floats.
 *
 * @param samples    mono samples in [-1, 1]
 * @param sampleRate samples per second
 * @param seconds    duration, {@code samples.length / sampleRate}
 */
public record DecodedAudio(float[] samples, int sampleRate, double seconds) {

    public DecodedAudio(float[] samples, int sampleRate) {
        this(samples, sampleRate, (double) samples.length / sampleRate);
    }
}
