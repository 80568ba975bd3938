package io.timbre.speaker;

import io.quarkus.test.junit.QuarkusTest;
import io.timbre.account.TestUsers;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Recordings as phones and browsers make them register speakers and clone zero-shot (fixtures: see
 * io.timbre.audio.AudioDecoderTest); formats and codecs off the allow-list, and crafted, truncated or polyglot
 * files, are refused with problem+json while another user's registration goes through.
 */
@QuarkusTest
class RecordingFormatsTests {
    @Inject
    FeatureStore store;

    static byte[] fixture(String name) throws Exception {
        try (InputStream in = RecordingFormatsTests.class.getResourceAsStream("/audio/" + name)) {
            return in.readAllBytes();
        }
    }

    @ParameterizedTest
    @CsvSource({
            "tone.mp3, audio/mpeg",
            "tone.m4a, audio/mp4",
            "tone.aac, audio/aac",
            "tone.ogg, audio/ogg",
            "tone-vorbis.ogg, audio/ogg",
            "tone.flac, audio/flac",
            "tone.webm, audio/webm",
    })
    void registersASpeakerFromEachFormat(String name, String contentType) throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("formats"));
        double seconds = given().auth().oauth2(key).multiPart("name", "voice-" + name)
                .multiPart("promptText", "A steady vowel for the speaker prompt.")
                .multiPart("audio", name, fixture(name), contentType)
                .when().post("/v1/speakers")
                .then().statusCode(201).body("name", equalTo("voice-" + name))
                .extract().jsonPath().getDouble("promptSeconds");
        assertEquals(3.4, seconds, 0.1, "the 3.4 s tone, give or take the codec's priming and padding");
    }

    @Test
    void clonesZeroShotFromABrowserRecording() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("webm"));
        byte[] wav = given().auth().oauth2(key).multiPart("text", "Hi.").multiPart("promptText", "A steady vowel.")
                .multiPart("audio", "rec.webm", fixture("tone.webm"), "audio/webm")
                .when().post("/v1/tts")
                .then().statusCode(200).header("X-Timbre-Speaker-Source", "zero-shot").extract().asByteArray();
        assertTrue(wav.length > 44 + 480 * 2, "audio came back: " + wav.length + " bytes");
    }

    @Test
    void anUnsupportedCodecIsRefused() throws Exception {
        String detail = HostileUploads.refusedWhileOthersSucceed(store, "alac.m4a", fixture("tone-alac.m4a"), "audio/mp4",
                415, "audio-unsupported");
        assertTrue(detail.contains("alac") && detail.contains("WebM"), detail);
    }

    @Test
    void anUnknownFormatIsRefusedUnread() throws Exception {
        byte[] aiff = "FORM\0\0\0\u0040AIFFCOMM\0\0\0\u0012".getBytes(StandardCharsets.ISO_8859_1);
        HostileUploads.refusedWhileOthersSucceed(store, "a.aiff", Arrays.copyOf(aiff, 4096), "audio/aiff",
                415, "audio-unsupported");
    }

    @Test
    void aTruncatedRecordingIsRefused() throws Exception {
        byte[] m4a = fixture("tone.m4a");
        String detail = HostileUploads.refusedWhileOthersSucceed(store, "cut.m4a", Arrays.copyOf(m4a, 600), "audio/mp4",
                422, "audio-invalid");
        assertTrue(detail.contains("M4A"), detail);
    }

    @Test
    void aCraftedHeaderIsRefused() throws Exception {
        // an Ogg page header whose segment table promises more than the file holds, then garbage
        byte[] crafted = new byte[2048];
        System.arraycopy("OggS".getBytes(StandardCharsets.ISO_8859_1), 0, crafted, 0, 4);
        crafted[5] = 2;
        crafted[26] = (byte) 255;
        Arrays.fill(crafted, 27, crafted.length, (byte) 0xFF);
        HostileUploads.refusedWhileOthersSucceed(store, "x.ogg", crafted, "audio/ogg", 422, "audio-invalid");
    }

    @Test
    void aPolyglotIsReadAsWhatItsMagicSays() throws Exception {
        byte[] mp3 = fixture("tone.mp3");
        byte[] polyglot = new byte[12 + mp3.length];
        System.arraycopy("RIFF\0\0\0\0WAVE".getBytes(StandardCharsets.ISO_8859_1), 0, polyglot, 0, 12);
        System.arraycopy(mp3, 0, polyglot, 12, mp3.length);
        String detail = HostileUploads.refusedWhileOthersSucceed(store, "poly.wav", polyglot, "audio/wav", 422, "audio-invalid");
        assertTrue(detail.contains("WAV"), detail);
    }

    @Test
    void aVeryLongRecordingStopsDecodingAndIsRefused() throws Exception {
        // 40 s of a 220 Hz sine in Ogg Opus (ffmpeg -f lavfi -i sine=frequency=220:sample_rate=16000:duration=40
        // -c:a libopus -b:a 6k): decoding stops a second past the 30 s limit
        given().auth().oauth2(TestUsers.createUser(TestUsers.uniqueName("long"))).multiPart("name", "long")
                .multiPart("promptText", "t").multiPart("audio", "long.ogg", fixture("sine-40s.ogg"), "audio/ogg")
                .when().post("/v1/speakers")
                .then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:audio-too-long")).body("detail", containsString("longer than 30 s"));
    }
}
