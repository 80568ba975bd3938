package io.timbre.audio;

/**
 * Refuses decoded audio that cannot be a voice recording, with a message saying what is wrong: an implausible
 * sample rate or channel count, NaN/Inf samples, silence, a constant (DC) signal, or clipping throughout.
 * Thresholds are far from any real recording: speech peaks well above -60 dBFS, and a recording clipped now and then
 * still has most of its samples below full scale.
 */
public final class AudioChecks {
    public static final int MIN_RATE = 8_000;
    public static final int MAX_RATE = 192_000;
    public static final int MAX_CHANNELS = 8;
    /** -60 dBFS: peak (after removing the mean) below which a recording is silence. */
    static final double SILENT_PEAK = 1e-3;
    /** Samples this close to full scale count as clipped. */
    static final double CLIP_LEVEL = 0.999;
    /** Share of clipped samples above which the whole recording is clipped. */
    static final double CLIPPED_SHARE = 0.25;

    private AudioChecks() {
    }

    public static void requirePlausibleRate(int sampleRate) {
        if (sampleRate < MIN_RATE || sampleRate > MAX_RATE) {
            throw new ImplausibleAudioException("audio-sample-rate", "Implausible sample rate", "The recording's sample rate is "
                    + sampleRate + " Hz; a voice recording has " + MIN_RATE + " to " + MAX_RATE + " Hz (e.g. 16000, 44100 or 48000).");
        }
    }

    /** @throws ImplausibleAudioException naming the first thing that is wrong */
    public static void requirePlausible(DecodedAudio audio) {
        requirePlausibleRate(audio.sampleRate());
        float[] x = audio.samples();
        if (x.length == 0) {
            throw new ImplausibleAudioException("audio-empty", "No audio", "The recording contains no samples.");
        }
        double sum = 0;
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        long clipped = 0;
        for (int i = 0; i < x.length; i++) {
            float v = x[i];
            if (!Float.isFinite(v)) {
                throw new ImplausibleAudioException("audio-not-finite", "Audio has invalid samples", String.format(
                        "The recording contains NaN or infinite samples (the first at %.3f s); a float WAV must hold "
                                + "finite numbers. Export it again, e.g. as 16-bit PCM.", i / (double) audio.sampleRate()));
            }
            sum += v;
            min = Math.min(min, v);
            max = Math.max(max, v);
            if (Math.abs(v) >= CLIP_LEVEL) {
                clipped++;
            }
        }
        double mean = sum / x.length;
        double peak = Math.max(max - mean, mean - min);
        if (peak < SILENT_PEAK) {
            if (Math.abs(mean) >= SILENT_PEAK) {
                throw new ImplausibleAudioException("audio-constant", "Audio is constant", String.format(
                        "The recording is one constant value (%.4f of full scale) throughout: a DC signal, not a voice. "
                                + "Check the microphone and record again.", mean));
            }
            throw new ImplausibleAudioException("audio-silent", "Audio is silent", String.format(
                    "The recording is silent (peak %.1f dBFS); record the speaker's voice and try again.",
                    20 * Math.log10(Math.max(peak, 1e-10))));
        }
        double share = clipped / (double) x.length;
        if (share > CLIPPED_SHARE) {
            throw new ImplausibleAudioException("audio-clipped", "Audio is clipped", String.format(
                    "%.0f%% of the recording's samples are at full scale: it is clipped throughout. Record again with a "
                            + "lower input level.", 100 * share));
        }
    }
}
