package io.timbre.synthesis;

import io.timbre.engine.Engine;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.TorchSave;
import jakarta.inject.Inject;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItems;
import static org.hamcrest.Matchers.hasSize;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * Instructions end to end on the tiny CosyVoice 2 pack, which declares CosyVoice 2's: the list, instruct with a stored
 * speaker and zero-shot, OpenAI's instructions, refusals; and the pack family stated by feature export and import.
 */
@QuarkusTest
class InstructTests {
    static final Path PROMPT = Path.of("models/tiny/golden/tone.wav");
    static final String TEXT = "Hello there.";

    @Inject
    Engine engine;

    String key;

    @BeforeEach
    void user() {
        key = TestUsers.createUser(TestUsers.uniqueName("instruct"));
    }

    String register(String name, String transcript) throws Exception {
        return given().auth().oauth2(key).multiPart("name", name).multiPart("promptText", transcript)
                .multiPart("audio", "prompt.wav", Files.readAllBytes(PROMPT), "audio/wav")
                .post("/v1/speakers").then().statusCode(201).extract().path("id");
    }

    byte[] tts(String body) {
        Response r = given().auth().oauth2(key).contentType(ContentType.JSON).body(body).post("/v1/tts");
        r.then().statusCode(200).contentType("audio/wav");
        return r.asByteArray();
    }

    @Test
    void theListIsThePacksDeclaration() {
        given().auth().oauth2(key).get("/v1/instructions").then().statusCode(200)
                .body("family", equalTo("cosyvoice2"))
                .body("pack", equalTo(engine.pack().key()))
                .body("systemPrompt", nullValue())
                .body("instructions", hasSize(9))
                .body("instructions.id", hasItems("sichuanese", "cantonese", "happy", "fast"))
                .body("instructions.find { it.id == 'sichuanese' }.text", equalTo("用四川话说这句话"));
        given().get("/v1/instructions").then().statusCode(401).contentType("application/problem+json");
    }

    @Test
    void instructWithAStoredSpeakerNeverSpeaksTheTranscript() throws Exception {
        String a = register("a", "A steady vowel for the speaker prompt.");
        String b = register("b", "Completely different words were said here.");   // same recording, other transcript
        byte[] plainA = tts("{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + a + "\"}");
        byte[] plainB = tts("{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + b + "\"}");
        assertFalse(Arrays.equals(plainA, plainB), "without an instruction the transcript is the LLM's prompt text");

        byte[] instructedA = tts("{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + a + "\",\"instruct\":\"sichuanese\"}");
        byte[] instructedB = tts("{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + b + "\",\"instruct\":\"sichuanese\"}");
        assertFalse(Arrays.equals(plainA, instructedA), "the instruction changes the LLM's prompt");
        assertArrayEquals(instructedA, instructedB, "with an instruction the stored transcript never reaches the LLM (upstream #1400)");
        assertArrayEquals(instructedA, tts("{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + a
                + "\",\"instruct\":\"用四川话说这句话\"}"), "named by its text, the same instruction");
        assertFalse(Arrays.equals(instructedA, tts("{\"text\":\"" + TEXT + "\",\"seed\":3,\"speakerId\":\"" + a
                + "\",\"instruct\":\"cantonese\"}")), "another instruction, another prompt");
    }

    @Test
    void instructZeroShot() throws Exception {
        byte[] wav = Files.readAllBytes(PROMPT);
        Response one = given().auth().oauth2(key).multiPart("text", TEXT).multiPart("promptText", "A steady vowel.")
                .multiPart("seed", "5").multiPart("instruct", "happy").multiPart("audio", "p.wav", wav, "audio/wav").post("/v1/tts");
        one.then().statusCode(200).contentType("audio/wav").header("X-Timbre-Speaker-Source", "zero-shot");
        Response two = given().auth().oauth2(key).multiPart("text", TEXT).multiPart("promptText", "Other words entirely.")
                .multiPart("seed", "5").multiPart("instruct", "happy").multiPart("audio", "p.wav", wav, "audio/wav").post("/v1/tts");
        assertArrayEquals(one.asByteArray(), two.then().statusCode(200).extract().asByteArray(),
                "zero-shot with an instruction: the transcript is not the LLM's prompt either");
    }

    @Test
    void anUnsupportedInstructionIs422ListingTheSupportedOnes() throws Exception {
        String a = register("a", "A steady vowel for the speaker prompt.");
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + a + "\",\"instruct\":\"talk like a pirate\"}")
                .post("/v1/tts").then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:instruct-unsupported"))
                .body("detail", containsString("'instruct' is 'talk like a pirate'"))
                .body("detail", containsString("sichuanese (用四川话说这句话)"))
                .body("detail", containsString("GET /v1/instructions"));
        given().auth().oauth2(key).multiPart("text", TEXT).multiPart("promptText", "A steady vowel.").multiPart("instruct", "robot")
                .multiPart("audio", "p.wav", Files.readAllBytes(PROMPT), "audio/wav").post("/v1/tts")
                .then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:instruct-unsupported"))
                .body("detail", containsString("cantonese"));
    }

    @Test
    void openAiInstructionsMapToTheModelsInstructions() throws Exception {
        String a = register("narrator", "A steady vowel for the speaker prompt.");
        byte[] plain = speech("{\"model\":\"tts-1\",\"input\":\"" + TEXT + "\",\"voice\":\"narrator\",\"response_format\":\"pcm\",\"seed\":2}");
        byte[] instructed = speech("{\"model\":\"tts-1\",\"input\":\"" + TEXT + "\",\"voice\":\"narrator\",\"response_format\":\"pcm\","
                + "\"seed\":2,\"instructions\":\"Cantonese\"}");
        assertFalse(Arrays.equals(plain, instructed), "the instruction reached the model");
        byte[] viaTts = given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"text\":\"" + TEXT + "\",\"seed\":2,\"speakerId\":\""
                + a + "\",\"instruct\":\"cantonese\",\"format\":\"pcm\",\"stream\":true}").post("/v1/tts").then().statusCode(200).extract().asByteArray();
        assertArrayEquals(viaTts, instructed, "instructions on /v1/audio/speech is instruct on /v1/tts (both streamed by hop)");

        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"" + TEXT + "\",\"voice\":\"narrator\",\"instructions\":\"Speak in a cheerful tone.\"}")
                .post("/v1/audio/speech").then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:instruct-unsupported"))
                .body("detail", containsString("'instructions' is 'Speak in a cheerful tone.'"))
                .body("detail", containsString("happy (用开心的语气说这句话)"));
    }

    byte[] speech(String body) {
        return given().auth().oauth2(key).contentType(ContentType.JSON).body(body).post("/v1/audio/speech")
                .then().statusCode(200).extract().asByteArray();
    }

    @Test
    void exportAndImportStateThePackFamilyAndRefuseAnother() throws Exception {
        String a = register("a", "A steady vowel for the speaker prompt.");
        Response export = given().auth().oauth2(key).get("/v1/speakers/" + a + "/features");
        export.then().statusCode(200).header("X-Timbre-Pack-Family", "cosyvoice2").header("X-Timbre-Pack", engine.pack().key());
        byte[] file = export.asByteArray();

        given().auth().oauth2(key).multiPart("file", "copy.pt", file, "application/octet-stream").multiPart("family", "cosyvoice2")
                .post("/v1/speakers/import").then().statusCode(201).header("X-Timbre-Pack-Family", "cosyvoice2")
                .body("[0].name", equalTo("copy"));
        given().auth().oauth2(key).multiPart("file", "other.pt", file, "application/octet-stream").multiPart("family", "cosyvoice3")
                .post("/v1/speakers/import").then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:family-mismatch"))
                .body("detail", containsString("from a cosyvoice3 deployment"))
                .body("detail", containsString("Nothing was imported"));
        given().auth().oauth2(key).multiPart("file", "other.pt", file, "application/octet-stream").multiPart("family", "cosyvoice9")
                .post("/v1/speakers/import").then().statusCode(422).body("type", equalTo("urn:timbre:problem:family-unknown"));

        // an entry as CosyVoice 3's frontend writes it: its prompt_text holds <|endofprompt|>
        SpeakerFeatures.Data d = SpeakerFeatures.readFeatureFile(file, engine.featureSchema(), TorchSave.Limits.of(1 << 24));
        long eop = engine.tokenize("<|endofprompt|>")[0];
        int[] text = new int[d.promptText().length + 1];
        text[0] = Math.toIntExact(eop);
        System.arraycopy(d.promptText(), 0, text, 1, d.promptText().length);
        byte[] cv3 = new SpeakerFeatures.Data(text, d.speechTokens(), d.speechFeat(), d.embedding()).toFeatureFile();
        given().auth().oauth2(key).multiPart("file", "cv3.pt", cv3, "application/octet-stream")
                .post("/v1/speakers/import").then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:family-mismatch"))
                .body("detail", containsString("was made by cosyvoice3"));
        given().auth().oauth2(key).get("/v1/speakers").then().body("name", hasSize(2));   // a and copy: nothing half-written
    }
}
