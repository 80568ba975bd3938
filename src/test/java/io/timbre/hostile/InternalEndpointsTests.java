package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;

/**
 * Metrics, OpenAPI and Swagger UI on the public port, as the packaged app serves them
 * ({@code timbre.http.internal-endpoints=key}): a client without the admin key or the metrics key gets 401
 * problem+json and sees nothing of them, a user's own API key is not enough, wrong keys count as failed
 * authentications (429 after the burst), health stays open for probes, and other users are served meanwhile.
 */
@QuarkusTest
@TestProfile(InternalEndpointsTests.KeyRequired.class)
class InternalEndpointsTests {

    static final String METRICS_KEY = "metrics-key-for-tests-0123456789";

    public static class KeyRequired implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.http.internal-endpoints", "key", "timbre.http.metrics-key", METRICS_KEY);
        }
    }

    @Test
    void metricsAndOpenApiAnswerOnlyTheAdminOrMetricsKey() {
        String user = TestUsers.createUser(TestUsers.uniqueName("reader"));
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        Set<String> filesBefore = Hostile.featureFiles();
        CompletableFuture<Integer> others = Hostile.othersRequest(other);
        for (String path : new String[]{"/q/metrics", "/q/openapi", "/q/openapi?format=json", "/q/swagger-ui/"}) {
            refused(given().get(path), path);
            refused(given().auth().oauth2(user).get(path), path + " with a user's key");
            refused(given().header("Authorization", "Basic " + TestUsers.ADMIN_KEY).get(path), path + " not as Bearer");
        }
        assertEquals(200, others.join(), "another user's request was served");
        assertEquals(filesBefore, Hostile.featureFiles(), "nothing was written");

        given().auth().oauth2(TestUsers.ADMIN_KEY).get("/q/metrics").then().statusCode(200)
                .body(containsString("timbre_host_memory_trims"));
        given().auth().oauth2(METRICS_KEY).get("/q/metrics").then().statusCode(200)
                .body(containsString("timbre_host_memory_trims"));
        given().auth().oauth2(METRICS_KEY).get("/q/openapi").then().statusCode(200).body(containsString("/v1/tts"));
        // Probes carry no key: health is not gated.
        given().get("/q/health/live").then().statusCode(200);
        given().get("/q/health/started").then().statusCode(200);
    }

    @Test
    void guessingTheMetricsKeyIsRateLimitedLikeAnyKey() throws Exception {
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        String from = "127.0.0.7";
        for (int i = 0; i < 20; i++) {
            RawHttp.Answer answer = metrics(from, "guess-" + i);
            assertEquals(401, answer.status(), answer.raw());
        }
        CompletableFuture<Integer> others = Hostile.othersRequest(other);
        RawHttp.Answer limited = metrics(from, METRICS_KEY);
        assertEquals(429, limited.status(), "even the right key, from an address that guessed: " + limited.raw());
        assertEquals("application/problem+json", limited.header("content-type"), limited.raw());
        assertTrue(Long.parseLong(limited.header("retry-after")) >= 1, limited.raw());
        assertFalse(limited.body().contains("timbre_"), limited.raw());
        assertEquals(200, others.join());
        assertEquals(200, metrics("127.0.0.8", METRICS_KEY).status(), "another address is not affected");
    }

    private static RawHttp.Answer metrics(String from, String key) throws Exception {
        return RawHttp.exchange(from, "GET /q/metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                + "Authorization: Bearer " + key + "\r\n\r\n");
    }

    static void refused(Response r, String what) {
        assertEquals(401, r.statusCode(), what + ": " + r.asString());
        assertEquals("application/problem+json", r.contentType(), what);
        assertEquals(401, (int) r.jsonPath().getInt("status"), what);
        assertTrue(r.header("WWW-Authenticate").startsWith("Bearer"), what);
        String body = r.asString();
        assertFalse(body.contains("timbre_") || body.contains("jvm_") || body.contains("openapi:")
                || body.contains("\"paths\"") || body.contains("<html") || body.contains("SwaggerUI"), what + " leaked: " + body);
    }
}
