package io.timbre.speaker;

import io.restassured.response.Response;
import io.timbre.account.TestUsers;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasSize;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Sends one hostile speaker registration while another user registers a good one at the same time, and checks
 * what a user would notice: the hostile one gets its 4xx problem+json of the expected type, its user has no
 * speaker, no feature file is left for it, and the other user's registration succeeds.
 */
final class HostileUploads {
    private HostileUploads() {
    }

    /** @return the hostile request's problem {@code detail} */
    static String refusedWhileOthersSucceed(FeatureStore store, String fileName, byte[] audio, String contentType,
                                            int status, String slug) throws Exception {
        String hostile = TestUsers.createUser(TestUsers.uniqueName("hostile"));
        String other = TestUsers.createUser(TestUsers.uniqueName("other"));
        long filesBefore = featureFiles(store);
        CompletableFuture<String> good = CompletableFuture.supplyAsync(() -> {
            try {
                return TestUsers.registerSpeaker(other, "good-voice");
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        Response r = given().auth().oauth2(hostile).multiPart("name", "bad-voice")
                .multiPart("promptText", "A steady vowel for the speaker prompt.")
                .multiPart("audio", fileName, audio, contentType).when().post("/v1/speakers");
        r.then().statusCode(status).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:" + slug)).body("status", equalTo(status));
        String goodId = good.get(5, TimeUnit.MINUTES);
        given().auth().oauth2(other).get("/v1/speakers/" + goodId).then().statusCode(200);
        given().auth().oauth2(hostile).get("/v1/speakers").then().statusCode(200).body("$", hasSize(0));
        assertEquals(filesBefore + 1, featureFiles(store), "only the other user's feature file was written");
        return r.jsonPath().getString("detail");
    }

    static long featureFiles(FeatureStore store) throws Exception {
        Path dir = store.file("x").getParent();
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (var s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".pt")).count();
        }
    }
}
