package io.timbre.synthesis;

import io.timbre.engine.Engine;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;
import io.timbre.text.TextFrontend;
import jakarta.inject.Inject;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** POST /v1/text/normalize, "normalize": false on both synthesis endpoints, and text with nothing to speak. */
@QuarkusTest
class TextNormalizeTests {

    @Inject
    Engine engine;

    String key;

    @BeforeEach
    void user() {
        key = TestUsers.createUser(TestUsers.uniqueName("textnorm"));
    }

    Response preview(Object body) {
        return given().auth().oauth2(key).contentType(ContentType.JSON).body(body).post("/v1/text/normalize");
    }

    @Test
    void previewReadsNumbersAsPeopleSayThem() {
        preview(Map.of("text", "价格是1234.56元，约合$170。")).then().statusCode(200)
                .body("language", equalTo("zh")).body("segments", equalTo(List.of("价格是一千二百三十四点五六元，约合一百七十美元。")));
        preview(Map.of("text", "It costs $1,234.56 on 2024-03-15 at 10:30am.")).then().statusCode(200)
                .body("language", equalTo("en")).body("segments", equalTo(List.of("It costs one thousand two hundred thirty-four "
                        + "dollars and fifty-six cents on March fifteenth, twenty twenty-four at ten thirty a m.")));
        preview(Map.of("text", "我有2个苹果。I have 2 apples.")).then().statusCode(200).body("language", equalTo("mixed"));
        preview(Map.of("text", "2 apples", "language", "zh")).then().statusCode(200).body("language", equalTo("zh"))
                .body("segments[0]", containsString("二"));
    }

    @Test
    void previewShowsPronunciationMarkupIntact() {
        preview(Map.of("text", "高管对报道[j][ǐ]予好评，共3次。")).then().statusCode(200)
                .body("segments", equalTo(List.of("高管对报道[j][ǐ]予好评，共三次。")));
        preview(Map.of("text", "Say [M][AY1][K][AH0][L] twice, [breath] at 9.")).then().statusCode(200)
                .body("segments", equalTo(List.of("Say [M][AY1][K][AH0][L] twice, [breath] at nine.")));
    }

    @Test
    void previewIsWhatSynthesisSpeaks() throws Exception {
        String speakerId = TestUsers.registerSpeaker(key, "preview");
        String text = "Room 42 at 9:30, ok? " + "This sentence is long enough to be a segment on its own, with words. ".repeat(3);
        List<String> segments = preview(Map.of("text", text)).then().statusCode(200).extract().jsonPath().getList("segments", String.class);
        assertTrue(segments.size() > 1);
        assertEquals(engine.textFrontend().segments(text), segments);
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body(Map.of("text", text, "speakerId", speakerId, "seed", 1)).post("/v1/tts")
                .then().statusCode(200).header("X-Timbre-Segments", String.valueOf(segments.size()));
    }

    @Test
    void normalizeFalseSpeaksTheTextAsWritten() throws Exception {
        preview(Map.of("text", "Room 42 at 9:30, ok?", "normalize", false)).then().statusCode(200)
                .body("segments", equalTo(List.of("Room 42 at 9:30, ok?")));
        String speakerId = TestUsers.registerSpeaker(key, "raw");
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body(Map.of("text", "Room 42 at 9:30, ok?", "speakerId", speakerId, "normalize", false)).post("/v1/tts")
                .then().statusCode(200).header("X-Timbre-Segments", "1");
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body(Map.of("model", "tts-1", "input", "Room 42 at 9:30, ok?", "voice", "raw", "response_format", "wav", "normalize", false))
                .post("/v1/audio/speech").then().statusCode(200);
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body(Map.of("model", "tts-1", "input", "Hi.", "voice", "raw", "normalize", "no"))
                .post("/v1/audio/speech").then().statusCode(400).contentType("application/problem+json");
    }

    @Test
    void textWithNothingSpeakableIs422() throws Exception {
        for (String text : List.of("\u200B\u200B\uFEFF", "...!!! ?", "\u200B。。")) {
            preview(Map.of("text", text)).then().statusCode(422).contentType("application/problem+json")
                    .body("type", equalTo("urn:timbre:problem:text-unspeakable"));
        }
        // NUL characters are refused before reading, as in every text field (NulInputTests)
        preview(Map.of("text", "\u0000\u0000")).then().statusCode(400).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:nul-character"));
        String speakerId = TestUsers.registerSpeaker(key, "quiet");
        for (String text : List.of("\u200B\u200B\uFEFF", "...!!! ?")) {
            given().auth().oauth2(key).contentType(ContentType.JSON).body(Map.of("text", text, "speakerId", speakerId))
                    .post("/v1/tts").then().statusCode(422).contentType("application/problem+json")
                    .body("type", equalTo("urn:timbre:problem:text-unspeakable"));
            given().auth().oauth2(key).contentType(ContentType.JSON)
                    .body(Map.of("model", "tts-1", "input", text, "voice", "quiet")).post("/v1/audio/speech")
                    .then().statusCode(422).contentType("application/problem+json")
                    .body("type", equalTo("urn:timbre:problem:text-unspeakable"));
        }
    }

    @Test
    void anUnpunctuatedLongTextIsSplitWithinTheBudget() {
        TextFrontend f = engine.textFrontend();
        String text = "and then the story goes on ".repeat(112).strip();   // about 3000 characters, no punctuation
        assertTrue(text.length() >= 3000 - 30);
        List<String> segments = preview(Map.of("text", text)).then().statusCode(200).extract().jsonPath().getList("segments", String.class);
        assertTrue(segments.size() > 1, "split: " + segments.size());
        for (String s : segments) {
            assertTrue(f.length(s, false) <= f.budget(), "segment of " + f.length(s, false) + " tokens: " + s);
        }
        String special = "<|endofprompt|>" + "x".repeat(3000);
        List<String> parts = preview(Map.of("text", special)).then().statusCode(200).extract().jsonPath().getList("segments", String.class);
        assertTrue(parts.size() > 1);
        assertTrue(parts.get(0).startsWith("<|endofprompt|>"));
        parts.forEach(s -> assertTrue(f.length(s, false) <= f.budget()));
        assertEquals(special, String.join("", parts));
    }

    @Test
    void previewIsAuthenticatedValidatedAndDocumented() {
        given().contentType(ContentType.JSON).body(Map.of("text", "Hi")).post("/v1/text/normalize")
                .then().statusCode(401).contentType("application/problem+json");
        preview(Map.of("text", "Hi", "language", "fr")).then().statusCode(422).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:language-unsupported"));
        preview(Map.of("language", "en")).then().statusCode(422).contentType("application/problem+json");
        preview(Map.of("text", "a".repeat(5000))).then().statusCode(422).contentType("application/problem+json");
        given().get("/q/openapi").then().statusCode(200).body(containsString("/v1/text/normalize"));
    }
}
