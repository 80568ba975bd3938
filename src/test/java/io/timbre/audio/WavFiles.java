package io.timbre.audio;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Writes WAV files byte by byte, so tests do not depend on the encoder they check. */
final class WavFiles {

    static final int PCM = 1;
    static final int IEEE_FLOAT = 3;
    static final int ALAW = 6;
    static final int EXTENSIBLE = 0xFFFE;

    private WavFiles() {
    }

    /** Quantises {@code value} in [-1, 1] as one sample of the given encoding and returns its bytes (LE). */
    static byte[] sample(int formatTag, int bits, double value) {
        ByteBuffer out = ByteBuffer.allocate(bits / 8).order(ByteOrder.LITTLE_ENDIAN);
        if (formatTag == IEEE_FLOAT) {
            if (bits == 32) {
                out.putFloat((float) value);
            } else {
                out.putDouble(value);
            }
            return out.array();
        }
        if (bits == 8) { // WAV 8-bit PCM is unsigned
            out.put((byte) clamp(Math.round(value * 128) + 128, 0, 255));
            return out.array();
        }
        long max = (1L << (bits - 1)) - 1;
        long q = clamp(Math.round(value * (max + 1)), -max - 1, max);
        for (int i = 0; i < bits / 8; i++) {
            out.put((byte) (q >> (8 * i)));
        }
        return out.array();
    }

    /** The value a decoder must return for {@code value} after quantisation to this encoding. */
    static double quantised(int formatTag, int bits, double value) {
        if (formatTag == IEEE_FLOAT) {
            return bits == 32 ? (float) value : value;
        }
        if (bits == 8) {
            return (clamp(Math.round(value * 128) + 128, 0, 255) - 128) / 128.0;
        }
        long max = (1L << (bits - 1)) - 1;
        return clamp(Math.round(value * (max + 1)), -max - 1, max) / (double) (max + 1);
    }

    /** Interleaved frames: {@code channels[c][i]} is sample i of channel c. */
    static byte[] data(int formatTag, int bits, double[][] channels) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < channels[0].length; i++) {
            for (double[] channel : channels) {
                out.writeBytes(sample(formatTag, bits, channel[i]));
            }
        }
        return out.toByteArray();
    }

    /** A plain WAV: RIFF, fmt (16 bytes for PCM, 18 otherwise), data. */
    static byte[] wav(int formatTag, int channels, int sampleRate, int bits, byte[] data) {
        int fmtSize = formatTag == PCM ? 16 : 18;
        ByteBuffer fmt = ByteBuffer.allocate(fmtSize).order(ByteOrder.LITTLE_ENDIAN);
        fmt.putShort((short) formatTag).putShort((short) channels).putInt(sampleRate)
                .putInt(sampleRate * channels * bits / 8).putShort((short) (channels * bits / 8))
                .putShort((short) bits);
        if (fmtSize == 18) {
            fmt.putShort((short) 0);
        }
        return riff(fmt.array(), data, data.length);
    }

    /** A WAVE_FORMAT_EXTENSIBLE file whose sub-format is {@code subFormatTag} (PCM or IEEE_FLOAT). */
    static byte[] extensible(int subFormatTag, int channels, int sampleRate, int bits, byte[] data) {
        ByteBuffer fmt = ByteBuffer.allocate(40).order(ByteOrder.LITTLE_ENDIAN);
        fmt.putShort((short) EXTENSIBLE).putShort((short) channels).putInt(sampleRate)
                .putInt(sampleRate * channels * bits / 8).putShort((short) (channels * bits / 8))
                .putShort((short) bits)
                .putShort((short) 22) // cbSize
                .putShort((short) bits) // valid bits per sample
                .putInt(channels == 1 ? 0x4 : channels == 2 ? 0x3 : 0) // channel mask
                .putShort((short) subFormatTag)
                .put(new byte[] {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, (byte) 0x80, 0x00, 0x00, (byte) 0xAA, 0x00,
                        0x38, (byte) 0x9B, 0x71});
        return riff(fmt.array(), data, data.length);
    }

    /** RIFF container with the given fmt chunk body and a data chunk that declares {@code declaredDataSize}. */
    static byte[] riff(byte[] fmt, byte[] data, int declaredDataSize) {
        ByteBuffer out = ByteBuffer.allocate(12 + 8 + fmt.length + 8 + data.length).order(ByteOrder.LITTLE_ENDIAN);
        out.put("RIFF".getBytes()).putInt(4 + 8 + fmt.length + 8 + declaredDataSize).put("WAVE".getBytes());
        out.put("fmt ".getBytes()).putInt(fmt.length).put(fmt);
        out.put("data".getBytes()).putInt(declaredDataSize).put(data);
        return out.array();
    }

    private static long clamp(long v, long lo, long hi) {
        return Math.max(lo, Math.min(hi, v));
    }
}
