package io.timbre.audio;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import javax.sound.sampled.AudioFileFormat;
import javax.sound.sampled.AudioFormat;
import javax.sound.sampled.AudioInputStream;
import javax.sound.sampled.AudioSystem;
import javax.sound.sampled.UnsupportedAudioFileException;

/**
 * WAV in and out. Decoding uses the JDK's {@code javax.sound.sampled} readers, which handle RIFF/WAVE with
 * PCM (8-bit unsigned, 16/24/32-bit signed), IEEE float (32/64-bit), A-law, mu-law and
 * WAVE_FORMAT_EXTENSIBLE, at any sample rate and channel count (see WavCodecTest); this class turns their
 * frames into mono floats. Encoding writes 16-bit
 * PCM mono.
 */
public final class WavCodec {

    /** Size field value meaning "unknown length" in a streamed WAV header. */
    private static final int UNKNOWN_SIZE = 0xFFFFFFFF;
    private static final int HEADER_BYTES = 44;

    private WavCodec() {
    }

    /**
     * Decodes a WAV file, mixing all channels to mono by their mean.
     *
     * @throws InvalidAudioException if the bytes are not a WAV file, use an unsupported encoding, are
     *                               truncated, or hold no samples
     */
    public static DecodedAudio decode(byte[] wav) {
        if (wav == null || wav.length == 0) {
            throw new InvalidAudioException("The audio is empty; send a WAV file.");
        }
        if (wav.length < 12 || !ascii(wav, 0, "RIFF") || !ascii(wav, 8, "WAVE")) {
            throw new InvalidAudioException("The audio is not a WAV file (no RIFF/WAVE header); send a WAV file, "
                    + "e.g. 16-bit PCM.");
        }
        AudioFormat format;
        byte[] frames;
        long declaredFrames;
        try (AudioInputStream in = pcm(AudioSystem.getAudioInputStream(new ByteArrayInputStream(wav)))) {
            AudioFileFormat fileFormat = AudioSystem.getAudioFileFormat(new ByteArrayInputStream(wav));
            if (fileFormat.getType() != AudioFileFormat.Type.WAVE) {
                throw new InvalidAudioException("The audio is not a WAV file; send a WAV file.");
            }
            format = in.getFormat();
            declaredFrames = in.getFrameLength();
            frames = in.readAllBytes();
        } catch (UnsupportedAudioFileException e) {
            throw new InvalidAudioException("The WAV file is corrupt or uses an unsupported encoding; send PCM "
                    + "(8, 16, 24 or 32-bit) or 32-bit float.", e);
        } catch (IOException | IllegalArgumentException e) {
            throw new InvalidAudioException("The WAV file could not be read (" + e.getMessage() + "); it may be "
                    + "truncated or corrupt.", e);
        }
        int channels = format.getChannels();
        int frameSize = format.getFrameSize();
        int sampleRate = Math.round(format.getSampleRate());
        if (channels < 1 || frameSize < 1 || sampleRate < 1) {
            throw new InvalidAudioException("The WAV header is invalid (channels " + channels + ", sample rate "
                    + sampleRate + ").");
        }
        if (declaredFrames != AudioSystem.NOT_SPECIFIED && !hasUnknownDataSize(wav)
                && (long) frames.length < declaredFrames * frameSize) {
            throw new InvalidAudioException("The WAV file is truncated: its header announces " + declaredFrames
                    + " frames but only " + frames.length / frameSize + " are present.");
        }
        int frameCount = frames.length / frameSize;
        if (frameCount == 0) {
            throw new InvalidAudioException("The WAV file contains no audio samples.");
        }
        return new DecodedAudio(toMono(frames, frameCount, format), sampleRate);
    }

    /** A-law and mu-law (telephony WAVs) go through the JDK's converter to 16-bit PCM; the rest as is. */
    private static AudioInputStream pcm(AudioInputStream in) {
        AudioFormat format = in.getFormat();
        AudioFormat.Encoding encoding = format.getEncoding();
        if (!AudioFormat.Encoding.ALAW.equals(encoding) && !AudioFormat.Encoding.ULAW.equals(encoding)) {
            return in;
        }
        AudioFormat pcm16 = new AudioFormat(AudioFormat.Encoding.PCM_SIGNED, format.getSampleRate(), 16,
                format.getChannels(), format.getChannels() * 2, format.getSampleRate(), false);
        return AudioSystem.getAudioInputStream(pcm16, in);
    }

    private static float[] toMono(byte[] data, int frameCount, AudioFormat format) {
        SampleReader reader = sampleReader(format);
        int channels = format.getChannels();
        int bytesPerSample = format.getFrameSize() / channels;
        float[] mono = new float[frameCount];
        int offset = 0;
        for (int frame = 0; frame < frameCount; frame++) {
            double sum = 0;
            for (int channel = 0; channel < channels; channel++) {
                sum += reader.read(data, offset);
                offset += bytesPerSample;
            }
            mono[frame] = (float) Math.max(-1.0, Math.min(1.0, sum / channels));
        }
        return mono;
    }

    @FunctionalInterface
    private interface SampleReader {
        double read(byte[] data, int offset);
    }

    private static SampleReader sampleReader(AudioFormat format) {
        int bits = format.getSampleSizeInBits();
        boolean bigEndian = format.isBigEndian();
        AudioFormat.Encoding encoding = format.getEncoding();
        if (AudioFormat.Encoding.PCM_FLOAT.equals(encoding) && (bits == 32 || bits == 64)) {
            ByteOrder order = bigEndian ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
            return bits == 32
                    ? (data, offset) -> nanUnlessFinite(ByteBuffer.wrap(data, offset, 4).order(order).getFloat())
                    : (data, offset) -> nanUnlessFinite(ByteBuffer.wrap(data, offset, 8).order(order).getDouble());
        }
        if (AudioFormat.Encoding.PCM_UNSIGNED.equals(encoding) && bits == 8) {
            return (data, offset) -> ((data[offset] & 0xFF) - 128) / 128.0;
        }
        if (AudioFormat.Encoding.PCM_SIGNED.equals(encoding) && bits >= 8 && bits <= 32 && bits % 8 == 0) {
            int bytes = bits / 8;
            double scale = Math.pow(2, bits - 1);
            return (data, offset) -> signedInt(data, offset, bytes, bigEndian) / scale;
        }
        throw new InvalidAudioException("The WAV encoding " + encoding + " with " + bits + "-bit samples is not "
                + "supported; send PCM (8, 16, 24 or 32-bit) or 32-bit float.");
    }

    private static long signedInt(byte[] data, int offset, int bytes, boolean bigEndian) {
        long value = 0;
        for (int i = 0; i < bytes; i++) {
            int b = data[offset + (bigEndian ? i : bytes - 1 - i)] & 0xFF;
            value = (value << 8) | b;
        }
        int shift = 64 - 8 * bytes;
        return (value << shift) >> shift; // sign-extend
    }

    /** NaN and infinities stay NaN through the mix to mono (clamping would hide an infinity), so that
     * {@link AudioChecks} refuses them instead of hearing silence or full scale. */
    private static double nanUnlessFinite(double value) {
        return Double.isFinite(value) ? value : Double.NaN;
    }

    /**
     * Encodes mono samples as a 16-bit PCM WAV file. Samples are scaled by 32768 and clipped to
     * [-32768, 32767]; NaN becomes 0.
     */
    public static byte[] encodePcm16(float[] samples, int sampleRate) {
        int dataBytes = Math.multiplyExact(samples.length, 2);
        ByteBuffer out = ByteBuffer.allocate(HEADER_BYTES + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        writeHeader(out, sampleRate, 36 + dataBytes, dataBytes);
        for (float sample : samples) {
            out.putShort(toPcm16(sample));
        }
        return out.array();
    }

    /**
     * A 44-byte 16-bit PCM mono WAV header for a stream of unknown length: the RIFF and data sizes are
     * 0xFFFFFFFF, which common players read as "until the end of the stream". Follow it with
     * {@link #pcm16(float[])} chunks.
     */
    public static byte[] streamingHeader(int sampleRate) {
        ByteBuffer out = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        writeHeader(out, sampleRate, UNKNOWN_SIZE, UNKNOWN_SIZE);
        return out.array();
    }

    /** Raw 16-bit little-endian PCM of the samples (clipped), e.g. to follow {@link #streamingHeader(int)}. */
    public static byte[] pcm16(float[] samples) {
        ByteBuffer out = ByteBuffer.allocate(Math.multiplyExact(samples.length, 2)).order(ByteOrder.LITTLE_ENDIAN);
        for (float sample : samples) {
            out.putShort(toPcm16(sample));
        }
        return out.array();
    }

    private static void writeHeader(ByteBuffer out, int sampleRate, int riffSize, int dataSize) {
        if (sampleRate <= 0) {
            throw new IllegalArgumentException("sample rate must be positive: " + sampleRate);
        }
        short channels = 1;
        short bitsPerSample = 16;
        short blockAlign = (short) (channels * bitsPerSample / 8);
        out.put(new byte[] {'R', 'I', 'F', 'F'}).putInt(riffSize).put(new byte[] {'W', 'A', 'V', 'E'});
        out.put(new byte[] {'f', 'm', 't', ' '}).putInt(16)
                .putShort((short) 1) // WAVE_FORMAT_PCM
                .putShort(channels)
                .putInt(sampleRate)
                .putInt(sampleRate * blockAlign)
                .putShort(blockAlign)
                .putShort(bitsPerSample);
        out.put(new byte[] {'d', 'a', 't', 'a'}).putInt(dataSize);
    }

    /** Scales by 32768 like the decoder (and sox), so that decode(encode(x)) is within half a step of x. */
    static short toPcm16(float sample) {
        if (Float.isNaN(sample)) {
            return 0;
        }
        long scaled = Math.round((double) sample * 32768.0);
        return (short) Math.max(Short.MIN_VALUE, Math.min(Short.MAX_VALUE, scaled));
    }

    /** True if the data chunk's size is 0xFFFFFFFF, as written by streaming encoders (and {@link #streamingHeader}). */
    private static boolean hasUnknownDataSize(byte[] wav) {
        ByteBuffer in = ByteBuffer.wrap(wav).order(ByteOrder.LITTLE_ENDIAN);
        long offset = 12;
        while (offset + 8 <= wav.length) {
            int chunk = (int) offset;
            long size = Integer.toUnsignedLong(in.getInt(chunk + 4));
            if (ascii(wav, chunk, "data")) {
                return size == Integer.toUnsignedLong(UNKNOWN_SIZE);
            }
            offset += 8 + size + (size & 1); // chunks are padded to even sizes
        }
        return false;
    }

    private static boolean ascii(byte[] data, int offset, String text) {
        for (int i = 0; i < text.length(); i++) {
            if (data[offset + i] != text.charAt(i)) {
                return false;
            }
        }
        return true;
    }
}
