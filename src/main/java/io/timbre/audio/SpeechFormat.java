package io.timbre.audio;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.Locale;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The audio formats of OpenAI's speech API ({@code response_format}) and their Content-Type. {@code wav} and
 * {@code pcm} (raw 16-bit little-endian mono at the synthesis rate) are written here; the compressed ones go
 * through FFmpeg ({@link FfmpegEncoder}), whose encoders take the pack's 24 kHz directly.
 */
public enum SpeechFormat {
    MP3("audio/mpeg", "mp3", "libmp3lame", 64_000),
    OPUS("audio/ogg", "ogg", "libopus", 32_000),
    AAC("audio/aac", "adts", "aac", 64_000),
    FLAC("audio/flac", "flac", "flac", 0),
    WAV("audio/wav", null, null, 0),
    PCM("audio/pcm", null, null, 0);

    private final String contentType;
    final String muxer;
    final String encoder;
    final long bitRate;

    SpeechFormat(String contentType, String muxer, String encoder, long bitRate) {
        this.contentType = contentType;
        this.muxer = muxer;
        this.encoder = encoder;
        this.bitRate = bitRate;
    }

    public String contentType() {
        return contentType;
    }

    public String apiName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** True where FFmpeg encodes it. */
    public boolean compressed() {
        return encoder != null;
    }

    public static Optional<SpeechFormat> parse(String name) {
        return Arrays.stream(values()).filter(f -> f.apiName().equals(name)).findFirst();
    }

    public static String names() {
        return Arrays.stream(values()).map(SpeechFormat::apiName).collect(Collectors.joining(", "));
    }

    /**
     * A writer of this format to {@code out}, for audio whose length is not known yet: WAV gets a header with
     * unknown sizes ({@link WavCodec#streamingHeader(int)}) at once, PCM is raw 16-bit little-endian, the
     * compressed formats stream through FFmpeg.
     */
    public AudioWriter writer(int sampleRate, OutputStream out) throws IOException {
        if (compressed()) {
            return FfmpegEncoder.open(this, sampleRate, out);
        }
        if (this == WAV) {
            out.write(WavCodec.streamingHeader(sampleRate));
        }
        return new AudioWriter() {
            @Override
            public void write(float[] samples) throws IOException {
                out.write(WavCodec.pcm16(samples));
            }

            @Override
            public void finish() {
            }

            @Override
            public void close() {
            }
        };
    }

    /** The whole clip in this format; a WAV gets its exact length in the header. */
    public byte[] encode(float[] samples, int sampleRate) {
        if (this == WAV) {
            return WavCodec.encodePcm16(samples, sampleRate);
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(samples.length * 2 + 1024);
        try (AudioWriter w = writer(sampleRate, out)) {
            w.write(samples);
            w.finish();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }
}
