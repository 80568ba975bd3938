package io.timbre.api;

import static io.restassured.RestAssured.given;
import static io.timbre.account.TestUsers.ADMIN_KEY;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import java.util.Map;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;

/** With the database unreachable, requests fail fast with 503 and readiness goes down. */
@QuarkusTest
@TestProfile(DatabaseOutageTests.DatabaseDown.class)
class DatabaseOutageTests {

    /** Nothing listens on port 1: every connection attempt is refused, as when PostgreSQL is down. */
    public static class DatabaseDown implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of(
                    "quarkus.datasource.jdbc.url", "jdbc:postgresql://127.0.0.1:1/timbre",
                    "quarkus.flyway.migrate-at-start", "false",
                    "quarkus.datasource.jdbc.acquisition-timeout", "2S",
                    "quarkus.datasource.jdbc.login-timeout", "1S");
        }
    }

    @Test
    void apiRequestsAnswerServiceUnavailableWithRetryAfter() {
        given().auth().oauth2("tmb_some-user-key").when().get("/v1/me")
                .then().statusCode(503)
                .contentType("application/problem+json")
                .header("Retry-After", "5")
                .body("status", equalTo(503))
                .body("type", equalTo("urn:timbre:problem:database-unavailable"))
                .body("detail", containsString("retry"));

        given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON).body("{\"name\":\"nobody\"}")
                .when().post("/v1/users")
                .then().statusCode(503)
                .header("Retry-After", "5");
    }

    @Test
    void readinessIsDownAndLivenessIsUp() {
        given().when().get("/q/health/ready")
                .then().statusCode(503)
                .body("status", equalTo("DOWN"));
        given().when().get("/q/health/live")
                .then().statusCode(200)
                .body("status", equalTo("UP"));
    }
}
