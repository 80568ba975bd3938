package io.timbre.synthesis;

import io.timbre.engine.Engine;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.builder.MultiPartSpecBuilder;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.restassured.specification.MultiPartSpecification;
import io.timbre.account.TestUsers;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.TinyCosyVoice3Pack;
import io.timbre.engine.TorchSave;
import io.timbre.speaker.FeatureStore;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasSize;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The service end to end on a CosyVoice 3 pack: the tiny CosyVoice 3 pack that export_cosyvoice3.py makes from the
 * committed conformance directory (random weights in Fun-CosyVoice3-0.5B's release layout; {@link TinyCosyVoice3Pack},
 * the same export CosyVoice3ConformanceTest checks against CosyVoice 3's own code). Register a speaker from a recording,
 * make it the current speaker, synthesize whole and streamed, with one of CosyVoice 3's instructions (stored speaker
 * and zero-shot), zero-shot, and with inline pinyin and CMU-phoneme markup; export the speaker's features.
 * Nothing in the service knows the family: the pack declares it (pack.json family, system_prompt, instructions).
 */
@QuarkusTest
@TestProfile(Cv3PackTests.CosyVoice3Pack.class)
class Cv3PackTests {
    static final String TRANSCRIPT = "A steady vowel for the speaker prompt.";
    /** CosyVoice 3's own upstream list (cosyvoice/utils/common.py instruct_list), without the system prompt and tail. */
    static final String SYSTEM_PROMPT = "You are a helpful assistant.";
    static final int SAMPLE_RATE = 24000;
    /** 25 speech tokens/s at 24 kHz: one token is 2 mel frames of 480 samples. */
    static final int SAMPLES_PER_TOKEN = SAMPLE_RATE / 25;

    public static class CosyVoice3Pack implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.model-pack", TinyCosyVoice3Pack.ensure().toString());
        }
    }

    @TestHTTPResource("/")
    URL base;

    @Inject
    Engine engine;
    @Inject
    FeatureStore store;

    /** A text form part in UTF-8, as browsers send it (RestAssured's default charset for a String part is not). */
    static MultiPartSpecification utf8(String name, String value) {
        return new MultiPartSpecBuilder(value).controlName(name).mimeType("text/plain").charset(StandardCharsets.UTF_8).build();
    }

    static Response tts(String key, String body) {
        return given().auth().oauth2(key).contentType(ContentType.JSON).body(body).post("/v1/tts");
    }

    /** The mono 16-bit samples of a whole-clip WAV answer, after checking its header says 24 kHz mono PCM. */
    static byte[] wavSamples(byte[] wav) {
        ByteBuffer h = ByteBuffer.wrap(wav).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals("RIFF", new String(wav, 0, 4, StandardCharsets.US_ASCII));
        assertEquals(1, h.getShort(22), "mono");
        assertEquals(SAMPLE_RATE, h.getInt(24), "CosyVoice 3's 24 kHz");
        assertEquals(16, h.getShort(34), "16-bit");
        return Arrays.copyOfRange(wav, 44, wav.length);
    }

    /**
     * Asserts the clip's length is one CosyVoice 3 may produce for {@code text}: at least one speech token of audio,
     * at most max_token_text_ratio (20) tokens per text id of each segment the service reads (the LLM's max_len;
     * CosyVoice 3 stops on any of 200 reserved ids, so there is no lower bound above one token). Returns seconds.
     */
    double assertPlausibleLength(String key, String text, byte[] samples) {
        List<String> segments = new ArrayList<>();
        given().auth().oauth2(key).contentType(ContentType.JSON).body(Map.of("text", text)).post("/v1/text/normalize")
                .then().statusCode(200).extract().jsonPath().getList("segments", String.class).forEach(segments::add);
        long ids = segments.stream().mapToLong(s -> engine.tokenize(s).length).sum();
        int n = samples.length / 2;
        assertTrue(n >= SAMPLES_PER_TOKEN, "at least one speech token of audio: " + n + " samples");
        assertTrue(n <= 20 * ids * SAMPLES_PER_TOKEN, n + " samples for " + ids + " text ids in " + segments.size()
                + " segments: more than max_token_text_ratio 20 allows");
        boolean sound = false;
        ByteBuffer b = ByteBuffer.wrap(samples).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n && !sound; i++) {
            sound = b.getShort(2 * i) != 0;
        }
        assertTrue(sound, "not all silence");
        return n / (double) SAMPLE_RATE;
    }

    /** A chunked WAV stream of unknown length at 24 kHz from the speaker source in memory; returns its samples. */
    byte[] streamedWav(String key, String json) throws Exception {
        HttpRequest r = HttpRequest.newBuilder(base.toURI().resolve("/v1/tts")).header("Authorization", "Bearer " + key)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build();
        HttpResponse<InputStream> streamed = HttpClient.newHttpClient().send(r, HttpResponse.BodyHandlers.ofInputStream());
        assertEquals(200, streamed.statusCode());
        assertTrue(streamed.headers().firstValue("Content-Length").isEmpty(), "chunked");
        assertEquals("memory", streamed.headers().firstValue("X-Timbre-Speaker-Source").orElse(""));
        byte[] body;
        try (InputStream in = streamed.body()) {
            body = in.readAllBytes();
        }
        ByteBuffer sh = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(-1, sh.getInt(40), "data size unknown");
        assertEquals(SAMPLE_RATE, sh.getInt(24));
        return Arrays.copyOfRange(body, 44, body.length);
    }

    @Test
    void registerCurrentSpeakerSynthesizeStreamInstructAndExportOnCosyVoice3() throws Exception {
        assertEquals("cosyvoice3", engine.pack().manifest.family());
        assertEquals(SAMPLE_RATE, engine.pack().manifest.outputSampleRate());
        String key = TestUsers.createUser(TestUsers.uniqueName("cv3"));

        // The pack's instructions: CosyVoice 3's 26, published as the pack declares them.
        JsonNode declared = new ObjectMapper().readTree(TinyCosyVoice3Pack.PACK.resolve("pack.json").toFile());
        assertEquals(26, declared.get("instructions").size(), "export_cosyvoice3.py declares upstream's list");
        given().auth().oauth2(key).get("/v1/instructions").then().statusCode(200)
                .body("pack", equalTo(engine.pack().key())).body("family", equalTo("cosyvoice3"))
                .body("systemPrompt", equalTo(SYSTEM_PROMPT)).body("instructions", hasSize(26))
                .body("instructions.find { it.id == 'cantonese' }.text", equalTo("请用广东话表达。"))
                .body("instructions.find { it.id == 'loud' }.text", equalTo("Please say a sentence as loudly as possible."))
                .body("instructions.find { it.id == 'peppa-pig' }.text", equalTo("我想体验一下小猪佩奇风格，可以吗？"));

        // Register from a recording (multipart), its features made by this pack; make it the current speaker.
        byte[] recording = Files.readAllBytes(TestUsers.PROMPT);
        String id = given().auth().oauth2(key).multiPart("name", "cv3-voice").multiPart("promptText", TRANSCRIPT)
                .multiPart("audio", "prompt.wav", recording, "audio/wav").post("/v1/speakers")
                .then().statusCode(201).body("pack", equalTo(engine.pack().key())).body("rebuildable", equalTo(true))
                .extract().path("id");
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + id + "\"}").put("/v1/me/speaker")
                .then().statusCode(200).body("currentSpeakerId", equalTo(id));

        // Synthesize with the current speaker (no speakerId).
        String text = "Hello world, this is a CosyVoice three pack.";
        Response whole = tts(key, "{\"text\":\"" + text + "\",\"seed\":7}");
        whole.then().statusCode(200).contentType("audio/wav").header("X-Timbre-Speaker-Source", "memory");
        byte[] samples = wavSamples(whole.asByteArray());
        double seconds = assertPlausibleLength(key, text, samples);
        System.out.printf("cv3 pack: \"%s\" -> %.2f s at %d Hz%n", text, seconds, SAMPLE_RATE);
        assertArrayEquals(whole.asByteArray(), tts(key, "{\"text\":\"" + text + "\",\"seed\":7,\"speakerId\":\"" + id + "\"}")
                .then().statusCode(200).extract().asByteArray(), "the current speaker is this speaker; same seed, same audio");

        // Streamed by segment: chunked WAV of unknown length at 24 kHz carrying the whole clip's samples.
        byte[] bySegment = streamedWav(key, "{\"text\":\"" + text + "\",\"seed\":7,\"stream\":true,\"stream_unit\":\"segment\"}");
        assertArrayEquals(samples, bySegment, "streamed by segment: the whole clip's samples");
        // Streamed by hop (the default unit): the pack declares streaming (DiT chunk masks, the causal vocoder re-run),
        // so the flow runs in streaming mode: as long as the whole clip, repeatable, and the same as raw PCM.
        assertTrue(engine.pack().streams(), "the CosyVoice 3 pack streams by hop");
        byte[] byHop = streamedWav(key, "{\"text\":\"" + text + "\",\"seed\":7,\"stream\":true}");
        assertEquals(samples.length, byHop.length, "streamed by hop: as many samples as the whole clip");
        assertArrayEquals(byHop, streamedWav(key, "{\"text\":\"" + text + "\",\"seed\":7,\"stream\":true,\"stream_unit\":\"hop\"}"),
                "streamed by hop again: the same samples");
        byte[] pcm = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"" + text + "\",\"seed\":7,\"stream\":true,\"format\":\"pcm\"}").post("/v1/tts")
                .then().statusCode(200).header("X-Timbre-Sample-Rate", "24000").extract().asByteArray();
        assertArrayEquals(byHop, pcm, "raw PCM stream by hop: the same samples");

        // An instruction, by id and by its text, with the stored speaker: the LLM's prompt changes, the audio with it.
        String zh = "收到好友从远方寄来的生日礼物。";
        byte[] plain = tts(key, "{\"text\":\"" + zh + "\",\"seed\":3}").then().statusCode(200).extract().asByteArray();
        Response cantonese = tts(key, "{\"text\":\"" + zh + "\",\"seed\":3,\"instruct\":\"cantonese\"}");
        cantonese.then().statusCode(200).header("X-Timbre-Speaker-Source", "memory");
        byte[] instructed = cantonese.asByteArray();
        assertPlausibleLength(key, zh, wavSamples(instructed));
        assertFalse(Arrays.equals(plain, instructed), "the instruction reaches the LLM");
        assertArrayEquals(instructed, tts(key, "{\"text\":\"" + zh + "\",\"seed\":3,\"instruct\":\"请用广东话表达。\"}")
                .then().statusCode(200).extract().asByteArray(), "by id or by text: the same instruction");
        tts(key, "{\"text\":\"" + zh + "\",\"instruct\":\"用粤语说这句话\"}").then().statusCode(422)
                .contentType("application/problem+json").body("type", equalTo("urn:timbre:problem:instruct-unsupported"))
                .body("detail", containsString("(cosyvoice3)"));

        // Zero-shot: the recording with the request, with and without an instruction.
        Response zeroShot = given().auth().oauth2(key).multiPart("text", text).multiPart("promptText", TRANSCRIPT)
                .multiPart("seed", "7").multiPart("audio", "p.wav", recording, "audio/wav").post("/v1/tts");
        zeroShot.then().statusCode(200).header("X-Timbre-Speaker-Source", "zero-shot");
        assertArrayEquals(samples, wavSamples(zeroShot.asByteArray()), "zero-shot from the same recording: the stored speaker's audio");
        Response zeroShotInstruct = given().auth().oauth2(key).multiPart(utf8("text", zh)).multiPart("promptText", TRANSCRIPT)
                .multiPart("seed", "3").multiPart("instruct", "cantonese").multiPart("audio", "p.wav", recording, "audio/wav")
                .post("/v1/tts");
        zeroShotInstruct.then().statusCode(200).header("X-Timbre-Speaker-Source", "zero-shot");
        assertArrayEquals(instructed, zeroShotInstruct.asByteArray(), "zero-shot with the instruction: the same audio");

        // Pronunciation markup: pinyin and CMU phonemes, intact through normalization, one token per bracket.
        String pinyin = "高管也通过电话、短信、微信等方式对报道[j][ǐ]予好评。";
        String cmu = "Please read [M][AY0][N][UW1][T] slowly.";
        given().auth().oauth2(key).contentType(ContentType.JSON).body(Map.of("text", pinyin)).post("/v1/text/normalize")
                .then().statusCode(200).body("segments[0]", containsString("报道[j][ǐ]予好评"));
        given().auth().oauth2(key).contentType(ContentType.JSON).body(Map.of("text", cmu)).post("/v1/text/normalize")
                .then().statusCode(200).body("segments[0]", containsString("[M][AY0][N][UW1][T]"));
        assertEquals(2, engine.tokenize("[j][ǐ]").length, "pinyin initial and final: one id each");
        assertEquals(5, engine.tokenize("[M][AY0][N][UW1][T]").length, "CMU phonemes: one id each");
        for (String marked : List.of(pinyin, cmu)) {
            Response m = tts(key, "{\"text\":\"" + marked + "\",\"seed\":5}");
            m.then().statusCode(200).header("X-Timbre-Speaker-Source", "memory");
            assertPlausibleLength(key, marked, wavSamples(m.asByteArray()));
        }

        // The speaker's features: read back from file, exported stating the family, prompt text CosyVoice 3's.
        store.evict(UUID.fromString(id));
        tts(key, "{\"text\":\"Hi.\",\"seed\":1}").then().statusCode(200).header("X-Timbre-Speaker-Source", "file");
        Response export = given().auth().oauth2(key).get("/v1/speakers/" + id + "/features");
        export.then().statusCode(200).header("X-Timbre-Pack-Family", "cosyvoice3").header("X-Timbre-Pack", engine.pack().key());
        int[] promptText = SpeakerFeatures.readFeatureFile(export.asByteArray(), engine.featureSchema(),
                TorchSave.Limits.of(1 << 24)).promptText();
        long[] expected = engine.tokenize(SYSTEM_PROMPT + "<|endofprompt|>" + TRANSCRIPT);
        assertArrayEquals(expected, Arrays.stream(promptText).asLongStream().toArray(),
                "stored as CosyVoice 3's example.py prompts: system prompt, <|endofprompt|>, transcript");
        String copy = given().auth().oauth2(key).multiPart("file", "spk2info.pt", export.asByteArray(), "application/octet-stream")
                .multiPart("family", "cosyvoice3").post("/v1/speakers/import").then().statusCode(201)
                .header("X-Timbre-Pack-Family", "cosyvoice3").extract().path("[0].id");
        tts(key, "{\"text\":\"" + text + "\",\"seed\":7,\"speakerId\":\"" + copy + "\"}").then().statusCode(200);
    }
}
