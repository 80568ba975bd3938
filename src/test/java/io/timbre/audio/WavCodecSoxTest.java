package io.timbre.audio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Checks the decoder against sox on files that sox writes (sox uses WAVE_FORMAT_EXTENSIBLE for more than
 * 16 bits or 2 channels, {@code wavpcm} forces the plain header). Skipped where sox is not installed.
 */
class WavCodecSoxTest {

    @TempDir
    static Path dir;

    @BeforeEach
    void requireSox() {
        assumeTrue(soxAvailable(), "sox is not installed; skipping the comparison with sox");
    }

    @ParameterizedTest(name = "{0} {1}-bit {2}, {3} Hz, {4} ch")
    @CsvSource({
            "wav,    8,  unsigned-integer, 8000,  1",
            "wav,    16, signed-integer,   16000, 1",
            "wav,    16, signed-integer,   44100, 2",
            "wav,    24, signed-integer,   48000, 2",
            "wavpcm, 24, signed-integer,   48000, 1",
            "wav,    32, signed-integer,   44100, 1",
            "wavpcm, 32, signed-integer,   16000, 2",
            "wav,    32, floating-point,   48000, 2",
            "wav,    16, signed-integer,   22050, 6",
            "wav,    8,  a-law,            8000,  1",
            "wav,    8,  u-law,            8000,  2",
    })
    void decodesLikeSox(String type, int bits, String encoding, int rate, int channels) throws Exception {
        Path wav = dir.resolve(type + bits + encoding + rate + "x" + channels + ".wav");
        Path raw = dir.resolve(wav.getFileName() + ".f32");
        // Two tones, different per channel, below full scale; no dither, so the file is deterministic.
        List<String> generate = new ArrayList<>(List.of("sox", "-D", "-n", "-t", type, "-r", "" + rate,
                "-c", "" + channels, "-b", "" + bits, "-e", encoding, wav.toString(),
                "synth", "0.3", "sine", "440", "sine", "1000", "vol", "0.9"));
        sox(generate);
        // sox's own reading of the file: every channel, as little-endian float32.
        sox(List.of("sox", "-D", wav.toString(), "-t", "raw", "-e", "floating-point", "-b", "32", "-L",
                raw.toString()));

        DecodedAudio audio = WavCodec.decode(Files.readAllBytes(wav));

        float[] expected = meanOfChannels(Files.readAllBytes(raw), channels);
        assertEquals(rate, audio.sampleRate());
        assertEquals(expected.length, audio.samples().length);
        assertArrayEquals(expected, audio.samples(), 2e-6f);
    }

    private static float[] meanOfChannels(byte[] raw, int channels) {
        FloatBuffer interleaved = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        float[] mono = new float[interleaved.remaining() / channels];
        for (int i = 0; i < mono.length; i++) {
            double sum = 0;
            for (int c = 0; c < channels; c++) {
                sum += interleaved.get(i * channels + c);
            }
            mono[i] = (float) (sum / channels);
        }
        return mono;
    }

    private static void sox(List<String> command) throws IOException, InterruptedException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes());
        if (!process.waitFor(30, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", command) + " failed: " + output);
        }
    }

    private static boolean soxAvailable() {
        try {
            Process process = new ProcessBuilder("sox", "--version").redirectErrorStream(true).start();
            process.getInputStream().readAllBytes();
            return process.waitFor(10, TimeUnit.SECONDS) && process.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
