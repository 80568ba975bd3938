package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;

/** {@code timbre.http.internal-endpoints=off}: metrics and OpenAPI are not served on the port at all, health is. */
@QuarkusTest
@TestProfile(InternalEndpointsOffTests.Off.class)
class InternalEndpointsOffTests {

    public static class Off implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.http.internal-endpoints", "off");
        }
    }

    @Test
    void metricsAndOpenApiAreNotServedEvenToTheAdmin() {
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        Set<String> filesBefore = Hostile.featureFiles();
        CompletableFuture<Integer> others = Hostile.othersRequest(other);
        for (String path : new String[]{"/q/metrics", "/q/openapi", "/q/swagger-ui/"}) {
            for (Response r : new Response[]{given().get(path), given().auth().oauth2(TestUsers.ADMIN_KEY).get(path)}) {
                assertEquals(404, r.statusCode(), path + ": " + r.asString());
                assertEquals("application/problem+json", r.contentType(), path);
                assertEquals(404, r.jsonPath().getInt("status"), path);
                assertFalse(r.asString().contains("timbre_") || r.asString().contains("\"paths\""), path + " leaked");
            }
        }
        assertEquals(200, others.join(), "another user's request was served");
        assertEquals(filesBefore, Hostile.featureFiles(), "nothing was written");
        given().get("/q/health/live").then().statusCode(200);
    }
}
