package io.timbre.speaker;

import io.restassured.response.Response;
import io.timbre.account.TestUsers;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The checks every hostile-input test makes: the request is answered with the given problem, the user's
 * speakers and the feature directory are as they were, and another user's synthesis at the same time succeeds.
 */
final class Refusals {
    private final FeatureStore store;
    private String victimKey;
    private String victimSpeaker;

    Refusals(FeatureStore store) {
        this.store = store;
    }

    void refused(String key, Supplier<Response> request, int status, String slug, String... detail) {
        if (victimKey == null) {
            victimKey = TestUsers.createUser(TestUsers.uniqueName("victim"));
            try {
                victimSpeaker = TestUsers.registerSpeaker(victimKey, "victim");
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
        List<String> speakers = speakers(key);
        long files = featureFiles();
        CompletableFuture<Response> victim = CompletableFuture.supplyAsync(() ->
                SpeakerFlowTests.tts(victimKey, "{\"text\":\"Hi.\",\"speakerId\":\"" + victimSpeaker + "\"}"));
        var r = request.get().then().statusCode(status).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:" + slug)).body("status", equalTo(status));
        for (String part : detail) {
            r.body("detail", containsString(part));
        }
        assertEquals(speakers, speakers(key), "no speaker was added");
        assertEquals(files, featureFiles(), "no feature file was written");
        SpeakerFlowTests.checkWav(victim.join());
    }

    static List<String> speakers(String key) {
        return given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).extract().path("id");
    }

    static Response importFile(String key, byte[] file) {
        return given().auth().oauth2(key).multiPart("file", "spk2info.pt", file, "application/octet-stream").post("/v1/speakers/import");
    }

    long featureFiles() {
        Path dir = store.file("x").getParent();
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (var s = Files.list(dir)) {
            return s.count();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
