package io.timbre.speaker;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;
import io.timbre.engine.Engine;
import io.timbre.engine.EngineGauges;
import io.micrometer.core.instrument.MeterRegistry;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasSize;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Speakers and synthesis through the HTTP API, on the real PostgreSQL and the tiny pack. */
@QuarkusTest
class SpeakerFlowTests {
    static final Path PROMPT = Path.of("models/tiny/golden/tone.wav");
    static final String PROMPT_TEXT = "A steady vowel for the speaker prompt.";
    static final String TEXT = "Hi.";

    @Inject
    Engine engine;

    @Inject
    MeterRegistry registry;   // the engine's gauges, as /q/metrics shows them

    @Inject
    FeatureStore store;

    static byte[] prompt() throws Exception {
        return Files.readAllBytes(PROMPT);
    }

    static String register(String key, String name, byte[] wav) {
        return given().auth().oauth2(key).multiPart("name", name).multiPart("promptText", PROMPT_TEXT)
                .multiPart("audio", "prompt.wav", wav, "audio/wav")
                .when().post("/v1/speakers").then().statusCode(201).body("name", equalTo(name))
                .extract().path("id");
    }

    static Response tts(String key, String body) {
        return given().auth().oauth2(key).contentType(ContentType.JSON).body(body).when().post("/v1/tts");
    }

    /** 16-bit mono WAV at 24 kHz with at least one 480-sample frame per speech token. */
    static byte[] checkWav(Response r) {
        r.then().statusCode(200).contentType("audio/wav");
        byte[] wav = r.asByteArray();
        ByteBuffer b = ByteBuffer.wrap(wav).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals("RIFF", new String(wav, 0, 4));
        assertEquals(1, b.getShort(22), "mono");
        assertEquals(24000, b.getInt(24), "pack rate");
        assertEquals(16, b.getShort(34), "16-bit");
        int samples = (wav.length - 44) / 2;
        assertTrue(samples >= 480 * 6 && samples % 480 == 0, "plausible length: " + samples);
        return wav;
    }

    @Test
    void registerSelectSynthesizeFromCacheWithoutRecomputingFeatures() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("flow"));
        String id = register(key, "me", prompt());
        given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("$", hasSize(1)).body("[0].id", equalTo(id));
        given().auth().oauth2(key).get("/v1/speakers/" + id).then().statusCode(200).body("rebuildable", equalTo(true));
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + id + "\"}")
                .put("/v1/me/speaker").then().statusCode(200);
        given().auth().oauth2(key).get("/v1/me").then().body("currentSpeakerId", equalTo(id));

        long before = EngineGauges.extractions(registry);
        Response first = tts(key, "{\"text\":\"" + TEXT + "\",\"seed\":7}");
        byte[] a = checkWav(first);
        assertEquals("memory", first.header("X-Timbre-Speaker-Source"));
        assertTrue(first.header("Server-Timing").matches("features;dur=[0-9.]+, queue;dur=[0-9.]+, llm;dur=[0-9.]+, flow-wait;dur=[0-9.]+, flow;dur=[0-9.]+, vocoder;dur=[0-9.]+, total;dur=[0-9.]+"),
                first.header("Server-Timing"));
        byte[] b = checkWav(tts(key, "{\"text\":\"" + TEXT + "\",\"seed\":7,\"speakerId\":\"" + id + "\"}"));
        assertArrayEquals(a, b, "same text, speaker and seed give the same audio");
        assertEquals(before, EngineGauges.extractions(registry), "a cached synthesis never computes features");

        store.evict(UUID.fromString(id));
        Response fromFile = tts(key, "{\"text\":\"" + TEXT + "\",\"seed\":7}");
        assertEquals("file", fromFile.header("X-Timbre-Speaker-Source"));
        assertArrayEquals(a, checkWav(fromFile), "features read back from the file give the same audio");
        assertEquals(before, EngineGauges.extractions(registry), "reading the feature file computes nothing");
    }

    @Test
    void missingOrCorruptFeatureFileIsRepairedFromThePromptAudio() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("repair"));
        String id = register(key, "me", prompt());
        byte[] a = checkWav(tts(key, "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + id + "\"}"));
        Path file = store.file(id + ".pt");

        store.evict(UUID.fromString(id));
        Files.delete(file);
        long before = EngineGauges.extractions(registry);
        Response r = tts(key, "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + id + "\"}");
        assertEquals("extracted", r.header("X-Timbre-Speaker-Source"));
        assertArrayEquals(a, checkWav(r), "re-extracted features give the same audio");
        assertEquals(before + 1, EngineGauges.extractions(registry));
        assertTrue(Files.isRegularFile(file), "the file is repaired");

        store.evict(UUID.fromString(id));
        byte[] bytes = Files.readAllBytes(file);
        bytes[bytes.length / 2] ^= 0x55;
        Files.write(file, bytes);
        Response r2 = tts(key, "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + id + "\"}");
        assertEquals("extracted", r2.header("X-Timbre-Speaker-Source"), "sha256 mismatch means re-extract");
        store.evict(UUID.fromString(id));
        assertEquals("file", tts(key, "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + id + "\"}").header("X-Timbre-Speaker-Source"));
    }

    @Test
    void usersSeeOnlyTheirOwnSpeakers() throws Exception {
        String alice = TestUsers.createUser(TestUsers.uniqueName("alice"));
        String bob = TestUsers.createUser(TestUsers.uniqueName("bob"));
        String id = register(alice, "voice", prompt());
        given().auth().oauth2(bob).get("/v1/speakers/" + id).then().statusCode(404).contentType("application/problem+json");
        given().auth().oauth2(bob).get("/v1/speakers").then().body("$", hasSize(0));
        tts(bob, "{\"text\":\"Hi.\",\"speakerId\":\"" + id + "\"}").then().statusCode(404);
        given().auth().oauth2(bob).delete("/v1/speakers/" + id).then().statusCode(404);
        given().auth().oauth2(bob).get("/v1/speakers/" + id + "/features").then().statusCode(404);
        given().get("/v1/speakers").then().statusCode(401).contentType("application/problem+json");
    }

    @Test
    void zeroShotStoresNothing() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("zero"));
        long files = featureFiles();
        Response r = given().auth().oauth2(key).multiPart("text", TEXT).multiPart("promptText", PROMPT_TEXT)
                .multiPart("audio", "p.wav", prompt(), "audio/wav").when().post("/v1/tts");
        checkWav(r);
        assertEquals("zero-shot", r.header("X-Timbre-Speaker-Source"));
        given().auth().oauth2(key).get("/v1/speakers").then().body("$", hasSize(0));
        assertEquals(files, featureFiles());
    }

    @Test
    void badInputIsAnsweredAndWritesNothing() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("bad"));
        long files = featureFiles();
        byte[] wav = prompt();
        given().auth().oauth2(key).multiPart("name", "x").multiPart("promptText", "t")
                .multiPart("audio", "a.wav", "not a wav at all".getBytes(), "audio/wav").post("/v1/speakers")
                .then().statusCode(415).contentType("application/problem+json").body("type", equalTo("urn:timbre:problem:audio-unsupported"));
        expect422(given().auth().oauth2(key).multiPart("name", "x").multiPart("promptText", "t")
                .multiPart("audio", "a.wav", java.util.Arrays.copyOf(wav, 44 + 2 * 16000), "audio/wav").post("/v1/speakers"), "audio-invalid");
        expect422(given().auth().oauth2(key).multiPart("name", "x").multiPart("promptText", "t")
                .multiPart("audio", "a.wav", io.timbre.audio.WavCodec.encodePcm16(new float[16000], 16000), "audio/wav")
                .post("/v1/speakers"), "audio-too-short");
        expect422(given().auth().oauth2(key).multiPart("name", "x").multiPart("promptText", "t")
                .multiPart("audio", "a.wav", io.timbre.audio.WavCodec.encodePcm16(new float[16000 * 31], 16000), "audio/wav")
                .post("/v1/speakers"), "audio-too-long");
        expect422(given().auth().oauth2(key).multiPart("name", "x").multiPart("promptText", "t").post("/v1/speakers"), "audio-missing");
        expect422(given().auth().oauth2(key).multiPart("name", "x").multiPart("audio", "a.wav", wav, "audio/wav")
                .post("/v1/speakers"), "prompt-text-missing");
        expect422(tts(key, "{\"text\":\"" + "a".repeat(4097) + "\"}"), "text-too-long");
        expect422(tts(key, "{\"text\":\"Hello.\"}"), "no-speaker");
        tts(key, "{\"text\":\"Hello.\",\"speakerId\":\"" + UUID.randomUUID() + "\"}").then().statusCode(404)
                .contentType("application/problem+json").body("detail", containsString("GET /v1/speakers"));
        given().auth().oauth2(key).get("/v1/speakers").then().body("$", hasSize(0));
        assertEquals(files, featureFiles(), "no feature file written");
        register(key, "dup", wav);
        given().auth().oauth2(key).multiPart("name", "dup").multiPart("promptText", "t")
                .multiPart("audio", "a.wav", wav, "audio/wav").post("/v1/speakers").then().statusCode(409);
        assertEquals(files + 1, featureFiles(), "the duplicate wrote no file");
    }

    @Test
    void deletingTheCurrentSpeakerClearsItAndRemovesTheFile() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("del"));
        String id = register(key, "gone", prompt());
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + id + "\"}").put("/v1/me/speaker");
        assertTrue(Files.exists(store.file(id + ".pt")));
        given().auth().oauth2(key).delete("/v1/speakers/" + id).then().statusCode(204);
        given().auth().oauth2(key).get("/v1/me").then().body("currentSpeakerId", nullValue());
        assertFalse(Files.exists(store.file(id + ".pt")));
        given().auth().oauth2(key).get("/v1/speakers/" + id).then().statusCode(404);
    }

    @Test
    void spk2infoImportAndFeatureExport() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("import"));
        List<String> ids = given().auth().oauth2(key)
                .multiPart("file", "spk2info.pt", Files.readAllBytes(Path.of("models/tiny/golden/spk2info.pt")), "application/octet-stream")
                .post("/v1/speakers/import").then().statusCode(201).body("$", hasSize(3)).extract().path("id");
        given().auth().oauth2(key).get("/v1/speakers").then().body("name", org.hamcrest.Matchers.contains("tone", "chirp", "bursts"));
        byte[] file = given().auth().oauth2(key).get("/v1/speakers/" + ids.get(0) + "/features").then().statusCode(200)
                .extract().asByteArray();
        try (var f = engine.readFeatures(file)) {
            assertEquals(85, f.tokenLength(), "the golden tone prompt's 85 speech tokens");
        }
        checkWav(tts(key, "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + ids.get(1) + "\"}"));
        given().auth().oauth2(key).multiPart("file", "x.pt", "garbage".getBytes(), "application/octet-stream")
                .post("/v1/speakers/import").then().statusCode(422).contentType("application/problem+json");
    }

    @Test
    void eightUsersAtOnceEachGetTheirOwnSpeaker() throws Exception {
        float[] base = io.timbre.audio.WavCodec.decode(prompt()).samples();
        int n = 8;
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<String[]>> jobs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int k = i;
                jobs.add(pool.submit(() -> {
                    float[] voice = base.clone();   // each user's recording differs (gain and a shift)
                    for (int j = 0; j < voice.length; j++) {
                        voice[j] = 0.3f * (k + 2) / 10f * base[(j + 800 * k) % base.length];
                    }
                    String key = TestUsers.createUser(TestUsers.uniqueName("par" + k));
                    String id = register(key, "v" + k, io.timbre.audio.WavCodec.encodePcm16(voice, 16000));
                    byte[] wav = checkWav(tts(key, "{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + id + "\"}"));
                    return new String[]{key, id, java.util.Base64.getEncoder().encodeToString(wav)};
                }));
            }
            List<String> distinct = new ArrayList<>();
            for (Future<String[]> f : jobs) {
                String[] r = f.get();
                byte[] concurrent = java.util.Base64.getDecoder().decode(r[2]);
                byte[] alone = checkWav(tts(r[0], "{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + r[1] + "\"}"));
                assertArrayEquals(alone, concurrent, "audio made under load equals audio made alone for that speaker");
                distinct.add(r[2]);
            }
            assertEquals(n, distinct.stream().distinct().count(), "every speaker sounds different");
        } finally {
            pool.shutdownNow();
        }
    }

    private static void expect422(Response r, String slug) {
        r.then().statusCode(422).contentType("application/problem+json").body("type", equalTo("urn:timbre:problem:" + slug));
    }

    private long featureFiles() throws Exception {
        Path dir = store.file("x").getParent();
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (var s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".pt")).count();
        }
    }
}
