package io.timbre.audio;

/**
 * Decodes an uploaded recording to mono floats at its own sample rate. The first bytes pick the container from the
 * allow-list ({@link AudioContainer}) before any parser sees the upload: WAV goes to {@link WavCodec}, the
 * compressed formats to {@link FfmpegDecoder}; anything else is refused unread. The sample rate is checked here;
 * the samples themselves by {@link AudioChecks#requirePlausible} (NaN/Inf, silence, DC, clipping), which callers run
 * after their length checks.
 */
public final class AudioDecoder {
    /** Largest upload decoded: 30 s of 192 kHz stereo 24-bit WAV is 35 MB; compressed recordings are far smaller. */
    public static final int MAX_BYTES = 40 << 20;
    /** Audio decoded past the caller's limit before stopping, so that "too long" is measured, not guessed. */
    static final double MARGIN_SECONDS = 1.0;

    private AudioDecoder() {
    }

    /**
     * @param maxSeconds the longest recording the caller accepts; decoding stops a little past it (the result is
     *                   then longer than {@code maxSeconds})
     * @throws UnsupportedAudioException if the bytes are not an allow-listed container or codec (415)
     * @throws InvalidAudioException     if they are corrupt or truncated, or the rate is implausible (422)
     */
    public static DecodedAudio decode(byte[] data, double maxSeconds) {
        if (data == null || data.length == 0) {
            throw new InvalidAudioException("The audio is empty; send a recording as " + AudioContainer.ACCEPTED + ".");
        }
        if (data.length > MAX_BYTES) {
            throw new InvalidAudioException("The audio file has " + data.length + " bytes; at most " + MAX_BYTES
                    + " are decoded. Send at most 30 s.");
        }
        AudioContainer container = AudioContainer.sniff(data);
        if (container == null) {
            throw new UnsupportedAudioException("The audio is not a recognised recording format (its first bytes match none); "
                    + "send " + AudioContainer.ACCEPTED + ".");
        }
        DecodedAudio audio = container == AudioContainer.WAV
                ? WavCodec.decode(data)
                : FfmpegDecoder.decode(data, container, maxSeconds + MARGIN_SECONDS);
        AudioChecks.requirePlausibleRate(audio.sampleRate());
        return audio;
    }
}
