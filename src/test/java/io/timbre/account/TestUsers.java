package io.timbre.account;

import static io.restassured.RestAssured.given;

import java.util.UUID;

import io.restassured.http.ContentType;

/** Creates users through the API, as a client would. */
public final class TestUsers {

    /** {@code %test.timbre.admin-key} in application.properties. */
    public static final String ADMIN_KEY = "timbre-dev-admin-key";

    private TestUsers() {
    }

    /** A name no other test uses. */
    public static String uniqueName(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    /** Creates a user and returns its API key. */
    public static String createUser(String name) {
        return given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON).body("{\"name\":\"" + name + "\"}")
                .when().post("/v1/users")
                .then().statusCode(201)
                .extract().path("apiKey");
    }
}
