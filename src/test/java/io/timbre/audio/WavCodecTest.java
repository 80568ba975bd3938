package io.timbre.audio;

import static io.timbre.audio.WavFiles.IEEE_FLOAT;
import static io.timbre.audio.WavFiles.PCM;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class WavCodecTest {

    /** Values that exercise both extremes, zero, and non-representable fractions. */
    private static final double[] VALUES = {-1.0, -0.7071, -0.25, 0.0, 1e-3, 0.3333, 0.5, 0.999};

    @ParameterizedTest(name = "format tag {0}, {1}-bit")
    @CsvSource({"1, 8", "1, 16", "1, 24", "1, 32", "3, 32", "3, 64"})
    void decodesPcmAndFloatDepths(int formatTag, int bits) {
        byte[] wav = WavFiles.wav(formatTag, 1, 16000, bits, WavFiles.data(formatTag, bits, new double[][] {VALUES}));

        DecodedAudio audio = WavCodec.decode(wav);

        assertEquals(16000, audio.sampleRate());
        assertArrayEquals(expected(formatTag, bits, VALUES), audio.samples(), 1e-7f);
    }

    @ParameterizedTest(name = "extensible, sub-format {0}, {1}-bit")
    @CsvSource({"1, 16", "1, 24", "1, 32", "3, 32"})
    void decodesWaveFormatExtensible(int subFormat, int bits) {
        byte[] wav = WavFiles.extensible(subFormat, 1, 48000, bits,
                WavFiles.data(subFormat, bits, new double[][] {VALUES}));

        DecodedAudio audio = WavCodec.decode(wav);

        assertEquals(48000, audio.sampleRate());
        assertArrayEquals(expected(subFormat, bits, VALUES), audio.samples(), 1e-7f);
    }

    @ParameterizedTest(name = "{0} Hz")
    @ValueSource(ints = {8000, 16000, 22050, 44100, 48000})
    void keepsTheSampleRateAndComputesTheDuration(int rate) {
        double[] second = new double[rate / 2];
        byte[] wav = WavFiles.wav(PCM, 1, rate, 16, WavFiles.data(PCM, 16, new double[][] {second}));

        DecodedAudio audio = WavCodec.decode(wav);

        assertEquals(rate, audio.sampleRate());
        assertEquals(rate / 2, audio.samples().length);
        assertEquals(0.5, audio.seconds(), 1.0 / rate);
    }

    @Test
    void mixesStereoToMonoByMean() {
        double[] left = {0.5, -0.5, 1.0, 0.25};
        double[] right = {0.5, 0.5, -1.0, 0.75};
        byte[] wav = WavFiles.wav(IEEE_FLOAT, 2, 44100, 32, WavFiles.data(IEEE_FLOAT, 32, new double[][] {left, right}));

        assertArrayEquals(new float[] {0.5f, 0f, 0f, 0.5f}, WavCodec.decode(wav).samples(), 1e-7f);
    }

    @Test
    void mixesManyChannelsToMonoByMean() {
        double[][] channels = new double[6][];
        for (int c = 0; c < 6; c++) {
            channels[c] = new double[] {c / 10.0, -c / 10.0};
        }
        byte[] wav = WavFiles.extensible(PCM, 6, 48000, 24, WavFiles.data(PCM, 24, channels));

        float[] mono = WavCodec.decode(wav).samples();

        assertArrayEquals(new float[] {0.25f, -0.25f}, mono, 1e-6f);
    }

    @Test
    void decodesALawByConvertingToPcm() {
        // A-law byte 0xD5 is the code for (near) silence; 0xAA and 0x2A are a large positive and negative value.
        byte[] wav = WavFiles.wav(WavFiles.ALAW, 1, 8000, 8, new byte[] {(byte) 0xD5, (byte) 0xAA, (byte) 0x2A});

        float[] samples = WavCodec.decode(wav).samples();

        assertEquals(3, samples.length);
        assertEquals(0f, samples[0], 1e-3f);
        assertTrue(samples[1] > 0.5f && samples[2] < -0.5f, Arrays.toString(samples));
    }

    @Test
    void rejectsEmptyInput() {
        assertRejected(new byte[0], "empty");
        assertRejected(null, "empty");
    }

    @Test
    void rejectsNonWav() {
        assertRejected("ID3\u0004\u0000 this is an mp3".getBytes(StandardCharsets.ISO_8859_1), "not a WAV");
        byte[] avi = WavFiles.wav(PCM, 1, 16000, 16, new byte[4]);
        System.arraycopy("AVI ".getBytes(StandardCharsets.US_ASCII), 0, avi, 8, 4);
        assertRejected(avi, "not a WAV");
    }

    @Test
    void rejectsTruncatedData() {
        byte[] data = WavFiles.data(PCM, 16, new double[][] {{0.1, 0.2, 0.3}});
        ByteBuffer fmt = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN)
                .putShort((short) PCM).putShort((short) 1).putInt(16000).putInt(32000).putShort((short) 2)
                .putShort((short) 16);
        byte[] wav = WavFiles.riff(fmt.array(), data, 32000);

        assertRejected(wav, "truncated");
    }

    @Test
    void rejectsAFileCutInsideItsHeader() {
        byte[] wav = WavFiles.wav(PCM, 1, 16000, 16, WavFiles.data(PCM, 16, new double[][] {VALUES}));
        assertThrows(InvalidAudioException.class, () -> WavCodec.decode(Arrays.copyOf(wav, 30)));
    }

    @Test
    void rejectsAWavWithoutSamples() {
        assertRejected(WavFiles.wav(PCM, 1, 16000, 16, new byte[0]), "no audio");
    }

    @Test
    void rejectsAnUnsupportedCodec() {
        // 0x0055 is MPEG Layer 3 inside a WAV container.
        byte[] wav = WavFiles.wav(0x0055, 1, 16000, 16, new byte[64]);
        InvalidAudioException e = assertThrows(InvalidAudioException.class, () -> WavCodec.decode(wav));
        assertTrue(e.getMessage().contains("unsupported"), e.getMessage());
    }

    @Test
    void encodesMono16BitPcmWithAValidHeader() {
        byte[] wav = WavCodec.encodePcm16(new float[] {0f, 0.5f, -0.5f}, 24000);
        ByteBuffer header = ByteBuffer.wrap(wav).order(ByteOrder.LITTLE_ENDIAN);

        assertEquals(44 + 6, wav.length);
        assertEquals("RIFF", new String(wav, 0, 4, StandardCharsets.US_ASCII));
        assertEquals(wav.length - 8, header.getInt(4));
        assertEquals("WAVE", new String(wav, 8, 4, StandardCharsets.US_ASCII));
        assertEquals(PCM, header.getShort(20));
        assertEquals(1, header.getShort(22));
        assertEquals(24000, header.getInt(24));
        assertEquals(48000, header.getInt(28));
        assertEquals(16, header.getShort(34));
        assertEquals(6, header.getInt(40));
        assertEquals(16384, header.getShort(46));
    }

    @Test
    void encodingRoundTripsThroughTheDecoder() {
        float[] samples = new float[2400];
        for (int i = 0; i < samples.length; i++) {
            samples[i] = (float) (0.8 * Math.sin(2 * Math.PI * 440 * i / 24000.0));
        }

        DecodedAudio audio = WavCodec.decode(WavCodec.encodePcm16(samples, 24000));

        assertEquals(24000, audio.sampleRate());
        assertArrayEquals(samples, audio.samples(), 0.5f / 32768 + 1e-7f);
    }

    @Test
    void clipsOutOfRangeSamplesAndSilencesNaN() {
        byte[] wav = WavCodec.encodePcm16(new float[] {1.5f, -2f, Float.NaN, Float.POSITIVE_INFINITY}, 16000);
        ByteBuffer data = ByteBuffer.wrap(wav, 44, 8).order(ByteOrder.LITTLE_ENDIAN);

        assertEquals(Short.MAX_VALUE, data.getShort());
        assertEquals(Short.MIN_VALUE, data.getShort());
        assertEquals(0, data.getShort());
        assertEquals(Short.MAX_VALUE, data.getShort());
    }

    @Test
    void streamingHeaderDeclaresUnknownLengthAndStillDecodes() {
        byte[] header = WavCodec.streamingHeader(24000);
        ByteBuffer fields = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(44, header.length);
        assertEquals(0xFFFFFFFF, fields.getInt(4));
        assertEquals(0xFFFFFFFF, fields.getInt(40));

        byte[] body = WavCodec.pcm16(new float[] {0.25f, -0.25f, 0.5f});
        byte[] stream = ByteBuffer.allocate(header.length + body.length).put(header).put(body).array();
        DecodedAudio audio = WavCodec.decode(stream);

        assertEquals(24000, audio.sampleRate());
        assertArrayEquals(new float[] {0.25f, -0.25f, 0.5f}, audio.samples(), 1f / 32767);
    }

    private static float[] expected(int formatTag, int bits, double[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (float) WavFiles.quantised(formatTag, bits, values[i]);
        }
        return out;
    }

    private static void assertRejected(byte[] wav, String messagePart) {
        InvalidAudioException e = assertThrows(InvalidAudioException.class, () -> WavCodec.decode(wav));
        assertTrue(e.getMessage().contains(messagePart), "message: " + e.getMessage());
    }
}
