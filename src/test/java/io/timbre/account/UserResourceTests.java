package io.timbre.account;

import static io.restassured.RestAssured.given;
import static io.timbre.account.TestUsers.ADMIN_KEY;
import static io.timbre.account.TestUsers.createUser;
import static io.timbre.account.TestUsers.uniqueName;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItem;
import static org.hamcrest.Matchers.matchesPattern;
import static org.hamcrest.Matchers.notNullValue;
import static org.hamcrest.Matchers.startsWith;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.time.Instant;

import org.junit.jupiter.api.Test;

import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.response.ExtractableResponse;
import io.restassured.response.Response;

@QuarkusTest
class UserResourceTests {

    private static final String PROBLEM_JSON = "application/problem+json";

    @Test
    void adminCreatesAUserAndGetsItsKeyOnce() {
        String name = uniqueName("alice");

        ExtractableResponse<Response> created = given().auth().oauth2(ADMIN_KEY)
                .contentType(ContentType.JSON).body("{\"name\":\"" + name + "\"}")
                .when().post("/v1/users")
                .then().statusCode(201)
                .contentType(ContentType.JSON)
                .header("Location", containsString("/v1/users/"))
                .body("name", equalTo(name))
                .body("id", notNullValue())
                .body("createdAt", notNullValue())
                .body("apiKey", matchesPattern("tmb_[A-Za-z0-9_-]{43}"))
                .extract();

        String apiKey = created.path("apiKey");
        long id = ((Number) created.path("id")).longValue();
        User stored = QuarkusTransaction.requiringNew().call(() -> User.findById(id));
        assertEquals(ApiKeys.hash(apiKey), stored.apiKeyHash);
        assertNotEquals(apiKey, stored.apiKeyHash);
    }

    @Test
    void aDuplicateNameIsAConflict() {
        String name = uniqueName("bob");
        createUser(name);

        given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON).body("{\"name\":\"" + name + "\"}")
                .when().post("/v1/users")
                .then().statusCode(409)
                .contentType(PROBLEM_JSON)
                .body("status", equalTo(409))
                .body("type", equalTo("urn:timbre:problem:user-exists"))
                .body("detail", containsString(name));
    }

    @Test
    void anInvalidNameIsRejectedWithTheFieldInError() {
        for (String body : new String[] {"{\"name\":\"\"}", "{\"name\":\"has space\"}",
                "{\"name\":\"" + "x".repeat(65) + "\"}", "{\"name\":\"caf\u00e9\"}", "{}"}) {
            given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON).body(body)
                    .when().post("/v1/users")
                    .then().statusCode(400)
                    .contentType(PROBLEM_JSON)
                    .body("type", equalTo("urn:timbre:problem:validation"))
                    .body("title", equalTo("Invalid request"))
                    .body("errors.field", hasItem("name"))
                    .body("errors[0].message", containsString("1 to 64 characters"))
                    .body("detail", containsString("name"));
        }
    }

    @Test
    void aMissingOrMalformedBodyIsABadRequest() {
        given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON)
                .when().post("/v1/users")
                .then().statusCode(400)
                .contentType(PROBLEM_JSON)
                .body("errors[0].message", containsString("JSON object"));

        given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON).body("{\"name\": ")
                .when().post("/v1/users")
                .then().statusCode(400)
                .contentType(PROBLEM_JSON)
                .body("type", equalTo("urn:timbre:problem:invalid-json"))
                .body("detail", startsWith("The request body is not valid JSON"));

        given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON).body("{\"name\": [1, 2]}")
                .when().post("/v1/users")
                .then().statusCode(400)
                .contentType(PROBLEM_JSON)
                .body("type", equalTo("urn:timbre:problem:invalid-json"))
                .body("detail", containsString("'name'"));
    }

    @Test
    void requestsWithoutAValidKeyAreUnauthorized() {
        given().when().get("/v1/me")
                .then().statusCode(401)
                .contentType(PROBLEM_JSON)
                .header("WWW-Authenticate", startsWith("Bearer"))
                .body("status", equalTo(401))
                .body("title", equalTo("Authentication required"))
                .body("detail", containsString("Authorization: Bearer"))
                .body("instance", equalTo("/v1/me"));

        given().auth().oauth2("tmb_not-a-real-key").when().get("/v1/me")
                .then().statusCode(401)
                .contentType(PROBLEM_JSON)
                .header("WWW-Authenticate", startsWith("Bearer"))
                .body("detail", containsString("not valid"));

        given().header("Authorization", "Basic dXNlcjpwYXNz").when().post("/v1/users")
                .then().statusCode(401)
                .contentType(PROBLEM_JSON);
    }

    @Test
    void onlyTheAdminCreatesUsers() {
        String key = createUser(uniqueName("carol"));

        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"name\":\"" + uniqueName("mallory") + "\"}")
                .when().post("/v1/users")
                .then().statusCode(403)
                .contentType(PROBLEM_JSON)
                .body("status", equalTo(403))
                .body("detail", containsString("admin key"));
    }

    @Test
    void meDescribesTheUserOfTheKey() {
        String name = uniqueName("dave");
        String key = createUser(name);

        given().auth().oauth2(key).when().get("/v1/me")
                .then().statusCode(200)
                .contentType(ContentType.JSON)
                .body("name", equalTo(name))
                .body("id", notNullValue())
                .body("createdAt", notNullValue())
                .body("currentSpeakerId", equalTo(null))
                .body("apiKey", equalTo(null));
    }

    @Test
    void theAdminKeyHasNoMe() {
        given().auth().oauth2(ADMIN_KEY).when().get("/v1/me")
                .then().statusCode(403)
                .contentType(PROBLEM_JSON)
                .body("detail", containsString("POST /v1/users"));
    }

    @Test
    void createdAtReadBackEqualsTheOneReturnedAtCreation() {
        String name = uniqueName("erin");
        String createdAt = given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON)
                .body("{\"name\":\"" + name + "\"}").when().post("/v1/users")
                .then().statusCode(201).extract().path("createdAt");
        User user = QuarkusTransaction.requiringNew().call(() -> User.findByName(name).orElseThrow());
        assertEquals(Instant.parse(createdAt), user.createdAt);
    }
}
