package io.timbre.account;

import static io.restassured.RestAssured.given;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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

    /** The tiny pack's 3.4 s golden tone: a valid speaker prompt. */
    public static final Path PROMPT = Path.of("models/tiny/golden/tone.wav");

    /** Registers a speaker named {@code name} for the key's user from {@link #PROMPT}; returns its id. */
    public static String registerSpeaker(String key, String name) throws IOException {
        return given().auth().oauth2(key).multiPart("name", name)
                .multiPart("promptText", "A steady vowel for the speaker prompt.")
                .multiPart("audio", "prompt.wav", Files.readAllBytes(PROMPT), "audio/wav")
                .when().post("/v1/speakers").then().statusCode(201).extract().path("id");
    }

    /** Creates a user and returns its API key. */
    public static String createUser(String name) {
        return given().auth().oauth2(ADMIN_KEY).contentType(ContentType.JSON).body("{\"name\":\"" + name + "\"}")
                .when().post("/v1/users")
                .then().statusCode(201)
                .extract().path("apiKey");
    }
}
