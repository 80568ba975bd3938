package io.timbre.speaker;

import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Audio that decodes but cannot be a voice is refused with a 422 that names what is wrong, writes nothing, and does
 * not disturb another user's registration: one case per kind.
 */
@QuarkusTest
class ImplausibleAudioTests {
    static final int RATE = 16000;
    static final int SECONDS = 4;

    @Inject
    FeatureStore store;

    static Stream<Arguments> kinds() {
        return Stream.of(
                Arguments.of("silent", floatWav(RATE, i -> 0.0), "audio-silent", "silent"),
                Arguments.of("near-silent hiss", floatWav(RATE, i -> 1e-4 * Math.sin(i * 0.3)), "audio-silent", "silent"),
                Arguments.of("DC", floatWav(RATE, i -> 0.4), "audio-constant", "constant"),
                Arguments.of("clipped throughout", floatWav(RATE, i -> Math.sin(2 * Math.PI * 220 * i / RATE) >= 0 ? 1.0 : -1.0),
                        "audio-clipped", "clipped"),
                Arguments.of("NaN", floatWav(RATE, i -> i == RATE ? Double.NaN : 0.3 * Math.sin(i * 0.05)), "audio-not-finite", "NaN"),
                Arguments.of("infinity", floatWav(RATE, i -> i == 2 * RATE ? Double.POSITIVE_INFINITY : 0.3 * Math.sin(i * 0.05)),
                        "audio-not-finite", "infinite"),
                Arguments.of("rate 1000 Hz", floatWavAt(1000, 4 * 1000), "audio-sample-rate", "1000 Hz"),
                Arguments.of("rate 1 MHz", floatWavAt(1_000_000, 4 * 1_000_000 / 8), "audio-sample-rate", "1000000 Hz"),
                Arguments.of("too short", floatWavAt(RATE, RATE), "audio-too-short", "at least"),
                Arguments.of("too long", floatWavAt(RATE, 31 * RATE), "audio-too-long", "longer than"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kinds")
    void isRefusedWithItsReason(String kind, byte[] wav, String slug, String inDetail) throws Exception {
        String detail = HostileUploads.refusedWhileOthersSucceed(store, "bad.wav", wav, "audio/wav", 422, slug);
        assertTrue(detail.contains(inDetail), kind + ": " + detail);
    }

    interface Signal {
        double at(int i);
    }

    static byte[] floatWav(int rate, Signal signal) {
        return floatWav(rate, SECONDS * rate, signal);
    }

    /** A plausible voice-like signal (a 200 Hz tone at half scale) at any rate and length. */
    static byte[] floatWavAt(int rate, int samples) {
        return floatWav(rate, samples, i -> 0.5 * Math.sin(2 * Math.PI * 200.0 * i / rate));
    }

    /** 32-bit float mono WAV written byte by byte (the encoder under test would clean NaN away). */
    static byte[] floatWav(int rate, int samples, Signal signal) {
        ByteBuffer b = ByteBuffer.allocate(44 + 4 * samples).order(ByteOrder.LITTLE_ENDIAN);
        b.put("RIFF".getBytes()).putInt(36 + 4 * samples).put("WAVE".getBytes());
        b.put("fmt ".getBytes()).putInt(16).putShort((short) 3).putShort((short) 1).putInt(rate).putInt(rate * 4)
                .putShort((short) 4).putShort((short) 32);
        b.put("data".getBytes()).putInt(4 * samples);
        for (int i = 0; i < samples; i++) {
            b.putFloat((float) signal.at(i));
        }
        return b.array();
    }
}
