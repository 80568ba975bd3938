package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.timbre.account.TestUsers;

/** NUL characters (U+0000) in names, transcripts, text and voice: 400 problem+json, nothing written (was 500). */
@QuarkusTest
class NulInputTests {

    static final String NUL = "\u0000";
    String key;
    String other;

    @BeforeEach
    void users() {
        key = TestUsers.createUser(TestUsers.uniqueName("nul"));
        other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
    }

    @Test
    void aNulInASpeakerNameOrTranscriptIsRefused() throws Exception {
        Set<String> before = Hostile.featureFiles();
        CompletableFuture<Integer> others = Hostile.othersRequest(other);
        for (String[] fields : new String[][]{{"bad" + NUL + "name", "A steady vowel."}, {"fine", "A steady" + NUL + " vowel."}}) {
            given().auth().oauth2(key).multiPart("name", fields[0]).multiPart("promptText", fields[1])
                    .multiPart("audio", "prompt.wav", Files.readAllBytes(TestUsers.PROMPT), "audio/wav")
                    .post("/v1/speakers").then().statusCode(400).contentType("application/problem+json")
                    .body("type", equalTo("urn:timbre:problem:nul-character"))
                    .body("detail", containsString("NUL"));
        }
        assertEquals(200, others.join());
        given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("size()", equalTo(0));
        assertEquals(before, Hostile.featureFiles(), "no feature file was written");
    }

    @Test
    void aNulInTextOrVoiceIsRefused() throws Exception {
        TestUsers.registerSpeaker(key, "voice");
        String speaker = given().auth().oauth2(key).get("/v1/speakers").then().extract().path("[0].id");
        Set<String> before = Hostile.featureFiles();
        CompletableFuture<Integer> others = Hostile.othersRequest(other);
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"Hi\\u0000 there.\",\"speakerId\":\"" + speaker + "\"}")
                .post("/v1/tts").then().statusCode(400).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:nul-character")).body("detail", containsString("'text'"));
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"vo\\u0000ice\"}")
                .post("/v1/audio/speech").then().statusCode(400).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:nul-character")).body("detail", containsString("'voice'"));
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"\\u0000\",\"voice\":\"voice\"}")
                .post("/v1/audio/speech").then().statusCode(400).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:nul-character"));
        given().auth().oauth2(key).multiPart("text", "Hi" + NUL).multiPart("promptText", "A steady vowel.")
                .multiPart("audio", "prompt.wav", Files.readAllBytes(TestUsers.PROMPT), "audio/wav")
                .post("/v1/tts").then().statusCode(400).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:nul-character"));
        assertEquals(200, others.join());
        assertEquals(before, Hostile.featureFiles(), "no feature file was written");
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"text\":\"Hi.\",\"speakerId\":\"" + speaker + "\"}")
                .post("/v1/tts").then().statusCode(200);
    }
}
