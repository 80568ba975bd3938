package io.timbre.speaker;

import io.timbre.engine.Engine;
import io.timbre.engine.EngineGauges;
import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;
import io.timbre.audio.DecodedAudio;
import io.timbre.audio.WavCodec;
import io.timbre.engine.FeatureExtractor;
import io.timbre.engine.ModelPack;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.TorchSave;
import io.timbre.text.TextTokenizer;
import io.micrometer.core.instrument.MeterRegistry;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.UUID;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasSize;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A deployment switched packs, from the tiny CosyVoice 2 pack to a CosyVoice 3-declared copy of it ("tiny-cv3": same
 * modules, pack.json with family cosyvoice3, CosyVoice 3's system prompt and instruction list). Speakers made by the
 * old pack are re-extracted from their stored recording on first use and say so; their features then are the new
 * pack's (CosyVoice 3 prompt text); features of the old family are refused at import.
 */
@QuarkusTest
@TestProfile(PackSwitchTests.CosyVoice3Copy.class)
class PackSwitchTests {
    static final Path TINY = Path.of("models/tiny");
    static final String TRANSCRIPT = "A steady vowel for the speaker prompt.";

    public static class CosyVoice3Copy implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.model-pack", cosyvoice3Copy().toString());
        }
    }

    /** models/tiny's files, with a pack.json renamed tiny-cv3 and declaring CosyVoice 3. */
    static synchronized Path cosyvoice3Copy() {
        try {
            Path dir = Files.createTempDirectory("timbre-tiny-cv3");
            try (var files = Files.list(TINY)) {
                for (Path f : files.filter(Files::isRegularFile).toList()) {
                    Files.copy(f, dir.resolve(f.getFileName()));
                }
            }
            var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
            var root = (com.fasterxml.jackson.databind.node.ObjectNode) mapper.readTree(TINY.resolve("pack.json").toFile());
            root.setAll((com.fasterxml.jackson.databind.node.ObjectNode) mapper.readTree(
                    Path.of("src/test/resources/packs/cosyvoice3-declaration.json").toFile()));
            root.put("name", "tiny-cv3");
            Files.writeString(dir.resolve("pack.json"), mapper.writeValueAsString(root));
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Inject
    Engine engine;

    @Inject
    MeterRegistry registry;   // the engine's gauges, as /q/metrics shows them

    @Inject
    FeatureStore store;

    static Response tts(String key, String body) {
        return given().auth().oauth2(key).contentType(ContentType.JSON).body(body).post("/v1/tts");
    }

    @Test
    void aSpeakerOfTheOldPackIsReExtractedOnFirstUseAndTheNewFamilyHoldsItsFeatures() throws Exception {
        assertEquals("tiny-cv3", engine.pack().manifest.name());
        String key = TestUsers.createUser(TestUsers.uniqueName("switch"));
        byte[] wav = Files.readAllBytes(TestUsers.PROMPT);
        String id = given().auth().oauth2(key).multiPart("name", "before").multiPart("promptText", TRANSCRIPT)
                .multiPart("audio", "p.wav", wav, "audio/wav").post("/v1/speakers").then().statusCode(201).extract().path("id");
        UUID uuid = UUID.fromString(id);

        // As it was before the switch: features made by the CosyVoice 2 pack, recorded as that pack's.
        byte[] cv2File;
        String cv2Version;
        try (ModelPack tiny = ModelPack.load(TINY, "cpu"); TextTokenizer tok = new TextTokenizer(TINY.resolve("tokenizer.json"))) {
            DecodedAudio audio = WavCodec.decode(wav);
            try (SpeakerFeatures f = new FeatureExtractor(tiny, tok).extract(audio.samples(), audio.sampleRate(), TRANSCRIPT)) {
                cv2File = f.toFeatureFile();
            }
            cv2Version = tiny.manifest.version();
        }
        FeatureStore.Written w = store.write(uuid, cv2File);
        QuarkusTransaction.requiringNew().run(() -> {
            Speaker s = Speaker.findById(uuid);
            s.featurePath = w.path();
            s.featureSha256 = w.sha256();
            s.featureBytes = w.bytes();
            s.packName = "tiny";
            s.packVersion = cv2Version;
        });
        store.evict(uuid);
        given().auth().oauth2(key).get("/v1/speakers/" + id).then().body("pack", equalTo("tiny@" + cv2Version));

        long before = EngineGauges.extractions(registry);
        Response first = tts(key, "{\"text\":\"Hi.\",\"seed\":4,\"speakerId\":\"" + id + "\"}");
        first.then().statusCode(200).contentType("audio/wav").header("X-Timbre-Speaker-Source", "re-extracted");
        assertEquals(before + 1, EngineGauges.extractions(registry), "re-extracted once, from the stored recording");
        given().auth().oauth2(key).get("/v1/speakers/" + id).then().body("pack", equalTo(engine.pack().key()));
        Response again = tts(key, "{\"text\":\"Hi.\",\"seed\":4,\"speakerId\":\"" + id + "\"}");
        again.then().header("X-Timbre-Speaker-Source", "memory");
        assertArrayEquals(first.asByteArray(), again.asByteArray());
        store.evict(uuid);
        tts(key, "{\"text\":\"Hi.\",\"seed\":4,\"speakerId\":\"" + id + "\"}").then().header("X-Timbre-Speaker-Source", "file");
        assertEquals(before + 1, EngineGauges.extractions(registry));

        // Its features are now CosyVoice 3's: the prompt text starts with the system prompt and <|endofprompt|>.
        Response export = given().auth().oauth2(key).get("/v1/speakers/" + id + "/features");
        export.then().statusCode(200).header("X-Timbre-Pack-Family", "cosyvoice3").header("X-Timbre-Pack", engine.pack().key());
        int[] text = SpeakerFeatures.readFeatureFile(export.asByteArray(), engine.featureSchema(), TorchSave.Limits.of(1 << 24)).promptText();
        long[] expected = engine.tokenize("You are a helpful assistant.<|endofprompt|>" + TRANSCRIPT);
        assertArrayEquals(expected, Arrays.stream(text).asLongStream().toArray());
    }

    @Test
    void instructionsAreCosyVoice3sAndWorkWithStoredAndZeroShotSpeakers() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("cv3"));
        given().auth().oauth2(key).get("/v1/instructions").then().statusCode(200)
                .body("family", equalTo("cosyvoice3")).body("systemPrompt", equalTo("You are a helpful assistant."))
                .body("instructions", hasSize(26))
                .body("instructions.find { it.id == 'robot' }.text", equalTo("你可以尝试用机器人的方式解答吗？"));
        String id = TestUsers.registerSpeaker(key, "voice");
        tts(key, "{\"text\":\"Hi.\",\"speakerId\":\"" + id + "\",\"instruct\":\"robot\"}").then().statusCode(200)
                .header("X-Timbre-Speaker-Source", "memory");
        given().auth().oauth2(key).multiPart("text", "Hi.").multiPart("promptText", "A steady vowel.").multiPart("instruct", "fast")
                .multiPart("audio", "p.wav", Files.readAllBytes(TestUsers.PROMPT), "audio/wav").post("/v1/tts")
                .then().statusCode(200).header("X-Timbre-Speaker-Source", "zero-shot");
        tts(key, "{\"text\":\"Hi.\",\"speakerId\":\"" + id + "\",\"instruct\":\"用四川话说这句话\"}").then().statusCode(422)
                .body("type", equalTo("urn:timbre:problem:instruct-unsupported"))
                .body("detail", containsString("tiny-cv3@")).body("detail", containsString("(cosyvoice3)"));
    }

    @Test
    void anImportedSpeakerOfTheOldPackHasNoRecordingToReExtractFrom() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("lost"));
        String id = TestUsers.registerSpeaker(key, "source");
        byte[] file = given().auth().oauth2(key).get("/v1/speakers/" + id + "/features").then().statusCode(200).extract().asByteArray();
        String imported = given().auth().oauth2(key).multiPart("file", "copy.pt", file, "application/octet-stream")
                .multiPart("family", "cosyvoice3").post("/v1/speakers/import").then().statusCode(201)
                .header("X-Timbre-Pack-Family", "cosyvoice3").extract().path("[0].id");
        UUID uuid = UUID.fromString(imported);
        QuarkusTransaction.requiringNew().run(() -> {
            Speaker s = Speaker.findById(uuid);
            s.packName = "tiny";   // as if imported before the switch
        });
        store.evict(uuid);
        tts(key, "{\"text\":\"Hi.\",\"speakerId\":\"" + imported + "\"}").then().statusCode(409)
                .contentType("application/problem+json").body("type", equalTo("urn:timbre:problem:features-lost"))
                .body("detail", containsString("were made by pack tiny@"))
                .body("detail", containsString("not by the loaded " + engine.pack().key() + " (cosyvoice3)"));
    }

    @Test
    void cosyVoice2FeaturesAreRefusedAtImport() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("cv2file"));
        given().auth().oauth2(key).multiPart("file", "spk2info.pt", Files.readAllBytes(TINY.resolve("golden/spk2info.pt")),
                        "application/octet-stream")
                .post("/v1/speakers/import").then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:family-mismatch"))
                .body("detail", containsString("was made by cosyvoice2"))
                .body("detail", containsString("a cosyvoice3 pack"));
        given().auth().oauth2(key).get("/v1/speakers").then().body("$", hasSize(0));
        assertTrue(engine.promptPlan().family().id.equals("cosyvoice3"));
    }
}
