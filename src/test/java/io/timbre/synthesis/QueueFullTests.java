package io.timbre.synthesis;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import io.timbre.account.TestUsers;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.matchesPattern;

/** A scheduler whose queue holds nothing: every synthesis is refused with 503, Retry-After and problem+json. */
@QuarkusTest
@TestProfile(QueueFullTests.NoQueue.class)
class QueueFullTests {
    public static class NoQueue implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.engine.queue-size", "0");
        }
    }

    @Test
    void aFullQueueAnswers503WithRetryAfterAndTheServiceStaysUp() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("busy"));
        String id = TestUsers.registerSpeaker(key, "busy");
        for (String stream : new String[]{"false", "true"}) {
            given().auth().oauth2(key).contentType(ContentType.JSON)
                    .body("{\"text\":\"Hi.\",\"speakerId\":\"" + id + "\",\"stream\":" + stream + "}")
                    .post("/v1/tts").then().statusCode(503).contentType("application/problem+json")
                    .header("Retry-After", matchesPattern("[1-9][0-9]*"))
                    .body("type", containsString("busy")).body("detail", containsString("retry"));
        }
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"busy\"}")
                .post("/v1/audio/speech").then().statusCode(503).header("Retry-After", matchesPattern("[1-9][0-9]*"));
        given().get("/q/health/ready").then().statusCode(200);
    }
}
