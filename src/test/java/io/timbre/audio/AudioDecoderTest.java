package io.timbre.audio;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Recordings as phones and browsers make them decode to mono at their own rate, with the tone's length and level;
 * anything off the allow-list, and corrupt, truncated or polyglot bytes, are refused with InvalidAudioException and
 * never crash the JVM. The fixtures in src/test/resources/audio were made from models/tiny/golden/tone.wav (3.4 s,
 * 16 kHz) with Debian's ffmpeg CLI, e.g. {@code ffmpeg -bitexact -i tone.wav -map_metadata -1 -ar 44100 -ac 2
 * -c:a libmp3lame -b:a 32k tone.mp3} (m4a: aac 48 kHz, aac: ADTS 22.05 kHz, ogg: libopus, tone-vorbis.ogg:
 * libvorbis 32 kHz, flac: 16 kHz, webm: libopus; mp3 and webm are stereo with the tone in both channels, -af
 * "pan=stereo|c0=c0|c1=c0", tone-opus.mp4: libopus in MP4, tone-alac.m4a: ALAC, 1 s).
 */
class AudioDecoderTest {
    static final Path TONE = Path.of("models/tiny/golden/tone.wav");

    static byte[] fixture(String name) throws IOException {
        try (InputStream in = AudioDecoderTest.class.getResourceAsStream("/audio/" + name)) {
            assertNotNull(in, name);
            return in.readAllBytes();
        }
    }

    static double rms(float[] x) {
        double s = 0;
        for (float v : x) {
            s += v * v;
        }
        return Math.sqrt(s / x.length);
    }

    @ParameterizedTest
    @CsvSource({
            "tone.mp3, 44100",
            "tone.m4a, 48000",
            "tone.aac, 22050",
            "tone.ogg, 48000",
            "tone-vorbis.ogg, 32000",
            "tone.flac, 16000",
            "tone.webm, 48000",
            "tone-opus.mp4, 48000",
    })
    void decodesEachAllowListedFormatAtItsOwnRate(String name, int rate) throws Exception {
        DecodedAudio original = WavCodec.decode(Files.readAllBytes(TONE));
        DecodedAudio audio = AudioDecoder.decode(fixture(name), 30);
        assertEquals(rate, audio.sampleRate(), name);
        // encoders add priming/padding (ADTS carries no length to trim it by); the duration is the tone's within 0.1 s
        assertEquals(original.seconds(), audio.seconds(), 0.1, name + ": " + audio.seconds() + " s");
        // lossy codecs at low bit rates keep the level within 25 %
        assertEquals(rms(original.samples()), rms(audio.samples()), 0.25 * rms(original.samples()), name);
        AudioChecks.requirePlausible(audio);
    }

    @Test
    void flacIsLossless() throws Exception {
        float[] original = WavCodec.decode(Files.readAllBytes(TONE)).samples();
        float[] flac = AudioDecoder.decode(fixture("tone.flac"), 30).samples();
        assertEquals(original.length, flac.length);
        for (int i = 0; i < original.length; i++) {
            assertEquals(original[i], flac[i], 1e-6, "sample " + i);
        }
    }

    @Test
    void wavStillGoesThroughWavCodec() throws Exception {
        byte[] wav = Files.readAllBytes(TONE);
        assertTrue(Arrays.equals(WavCodec.decode(wav).samples(), AudioDecoder.decode(wav, 30).samples()));
    }

    @Test
    void decodingStopsPastTheLimit() throws Exception {
        DecodedAudio cut = AudioDecoder.decode(fixture("tone.flac"), 1.0);
        assertTrue(cut.seconds() > 1.0 && cut.seconds() < 1.0 + AudioDecoder.MARGIN_SECONDS + 0.5, cut.seconds() + " s");
    }

    @Test
    void unknownContainersAreRefusedUnread() {
        UnsupportedAudioException e = assertThrows(UnsupportedAudioException.class,
                () -> AudioDecoder.decode("FORM\0\0\0\0AIFFCOMM this is aiff".getBytes(StandardCharsets.ISO_8859_1), 30));
        assertTrue(e.getMessage().contains("MP3"), e.getMessage());
        assertThrows(UnsupportedAudioException.class, () -> AudioDecoder.decode("<html><body>hello</body></html>".getBytes(), 30));
        assertThrows(UnsupportedAudioException.class, () -> AudioDecoder.decode(new byte[5], 30));
        assertThrows(InvalidAudioException.class, () -> AudioDecoder.decode(new byte[0], 30));
    }

    @Test
    void codecsOffTheAllowListAreRefused() throws Exception {
        UnsupportedAudioException e = assertThrows(UnsupportedAudioException.class,
                () -> AudioDecoder.decode(fixture("tone-alac.m4a"), 30));
        assertTrue(e.getMessage().contains("alac"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"tone.mp3", "tone.m4a", "tone.aac", "tone.ogg", "tone-vorbis.ogg", "tone.flac", "tone.webm"})
    void truncatedFilesAreRefusedOrShorter(String name) throws Exception {
        byte[] whole = fixture(name);
        for (int keep : new int[] {12, 64, 500, whole.length / 3, whole.length / 2}) {
            byte[] part = Arrays.copyOf(whole, keep);
            try {
                DecodedAudio a = AudioDecoder.decode(part, 30);
                assertTrue(a.seconds() < 3.4, name + " cut to " + keep + " bytes still gave " + a.seconds() + " s");
            } catch (InvalidAudioException expected) {
                assertTrue(expected.getMessage().length() > 10);
            }
        }
    }

    @Test
    void polyglotsAreReadAsWhatTheirMagicSays() throws Exception {
        // a RIFF/WAVE header followed by an MP3: the WAV reader sees it, FFmpeg never does
        byte[] mp3 = fixture("tone.mp3");
        byte[] polyglot = new byte[12 + mp3.length];
        System.arraycopy("RIFF\0\0\0\0WAVE".getBytes(StandardCharsets.ISO_8859_1), 0, polyglot, 0, 12);
        System.arraycopy(mp3, 0, polyglot, 12, mp3.length);
        assertThrows(InvalidAudioException.class, () -> AudioDecoder.decode(polyglot, 30));
        // "OggS" in front of a Matroska file: the Ogg demuxer finds no Ogg pages
        byte[] webm = fixture("tone.webm");
        byte[] ogg = new byte[4 + webm.length];
        System.arraycopy("OggS".getBytes(StandardCharsets.ISO_8859_1), 0, ogg, 0, 4);
        System.arraycopy(webm, 0, ogg, 4, webm.length);
        assertThrows(InvalidAudioException.class, () -> AudioDecoder.decode(ogg, 30));
        // an "ftyp" box that wraps a Matroska file
        byte[] mp4 = new byte[16 + webm.length];
        System.arraycopy("\0\0\0\u0010ftypM4A \0\0\0\0".getBytes(StandardCharsets.ISO_8859_1), 0, mp4, 0, 16);
        System.arraycopy(webm, 0, mp4, 16, webm.length);
        assertThrows(InvalidAudioException.class, () -> AudioDecoder.decode(mp4, 30));
    }

    /** Random bytes flipped in every format: each result is audio or an InvalidAudioException, never a crash. */
    @ParameterizedTest
    @ValueSource(strings = {"tone.mp3", "tone.m4a", "tone.aac", "tone.ogg", "tone-vorbis.ogg", "tone.flac", "tone.webm"})
    void corruptedFilesNeverCrash(String name) throws Exception {
        byte[] whole = fixture(name);
        Random random = new Random(name.hashCode());
        int decoded = 0;
        int refused = 0;
        for (int round = 0; round < 40; round++) {
            byte[] bad = whole.clone();
            for (int k = 0; k < 1 + round; k++) {
                bad[4 + random.nextInt(bad.length - 4)] = (byte) random.nextInt(256);
            }
            try {
                AudioDecoder.decode(bad, 30);
                decoded++;
            } catch (InvalidAudioException e) {
                refused++;
            }
        }
        assertEquals(40, decoded + refused);
    }
}
