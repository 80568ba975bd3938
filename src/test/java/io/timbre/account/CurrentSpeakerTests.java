package io.timbre.account;

import static io.restassured.RestAssured.given;
import static io.timbre.account.TestUsers.createUser;
import static io.timbre.account.TestUsers.uniqueName;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.UUID;

import org.junit.jupiter.api.Test;

import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.timbre.speaker.Speaker;

@QuarkusTest
class CurrentSpeakerTests {

    private static final String PROBLEM_JSON = "application/problem+json";

    @Test
    void aUserSelectsAndClearsOneOfTheirSpeakers() {
        String name = uniqueName("frank");
        String key = createUser(name);
        UUID speakerId = storeSpeaker(name, "narrator");

        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + speakerId + "\"}")
                .when().put("/v1/me/speaker")
                .then().statusCode(200)
                .body("currentSpeakerId", equalTo(speakerId.toString()));
        given().auth().oauth2(key).when().get("/v1/me")
                .then().statusCode(200)
                .body("currentSpeakerId", equalTo(speakerId.toString()));

        given().auth().oauth2(key).when().delete("/v1/me/speaker")
                .then().statusCode(204);
        given().auth().oauth2(key).when().get("/v1/me")
                .then().statusCode(200)
                .body("currentSpeakerId", equalTo(null));
    }

    @Test
    void anUnknownSpeakerIsNotFound() {
        String key = createUser(uniqueName("grace"));
        UUID unknown = UUID.randomUUID();

        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + unknown + "\"}")
                .when().put("/v1/me/speaker")
                .then().statusCode(404)
                .contentType(PROBLEM_JSON)
                .body("status", equalTo(404))
                .body("type", equalTo("urn:timbre:problem:speaker-not-found"))
                .body("detail", containsString(unknown.toString()));
    }

    @Test
    void anotherUsersSpeakerIsNotFound() {
        String owner = uniqueName("heidi");
        createUser(owner);
        UUID theirs = storeSpeaker(owner, "private voice");
        String intruderKey = createUser(uniqueName("ivan"));

        given().auth().oauth2(intruderKey).contentType(ContentType.JSON).body("{\"speakerId\":\"" + theirs + "\"}")
                .when().put("/v1/me/speaker")
                .then().statusCode(404)
                .contentType(PROBLEM_JSON);
        given().auth().oauth2(intruderKey).when().get("/v1/me")
                .then().body("currentSpeakerId", equalTo(null));
    }

    @Test
    void aMalformedSpeakerIdIsABadRequest() {
        String key = createUser(uniqueName("judy"));

        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"not-a-uuid\"}")
                .when().put("/v1/me/speaker")
                .then().statusCode(400)
                .contentType(PROBLEM_JSON)
                .body("detail", containsString("speakerId"));
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{}")
                .when().put("/v1/me/speaker")
                .then().statusCode(400)
                .contentType(PROBLEM_JSON)
                .body("errors[0].field", equalTo("speakerId"));
    }

    @Test
    void deletingTheCurrentSpeakerClearsTheSelection() {
        String name = uniqueName("ken");
        String key = createUser(name);
        UUID speakerId = storeSpeaker(name, "temporary");
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + speakerId + "\"}")
                .when().put("/v1/me/speaker").then().statusCode(200);

        QuarkusTransaction.requiringNew().run(() -> Speaker.deleteById(speakerId));

        given().auth().oauth2(key).when().get("/v1/me")
                .then().statusCode(200)
                .body("currentSpeakerId", equalTo(null));
    }

    @Test
    void speakersKeepTheirPromptAudioAndAreFoundOnlyByTheirOwner() {
        String name = uniqueName("laura");
        createUser(name);
        UUID speakerId = storeSpeaker(name, "with audio");

        QuarkusTransaction.requiringNew().run(() -> {
            User owner = User.findByName(name).orElseThrow();
            Speaker speaker = Speaker.findOwned(speakerId, owner).orElseThrow();
            assertArrayEquals(new byte[16], speaker.promptAudio);
            assertEquals(16000, speaker.promptSampleRate);
            assertEquals("Hello there.", speaker.promptText);
            assertTrue(Speaker.findOwned(speakerId, owner.id + 1_000_000).isEmpty());
            assertTrue(Speaker.findOwned(UUID.randomUUID(), owner).isEmpty());
        });
    }

    /** Stores a speaker as the registration endpoint will: 4 float32 samples of silence at 16 kHz. */
    private static UUID storeSpeaker(String ownerName, String speakerName) {
        return QuarkusTransaction.requiringNew().call(() -> {
            Speaker speaker = new Speaker();
            speaker.owner = User.findByName(ownerName).orElseThrow();
            speaker.name = speakerName;
            speaker.promptText = "Hello there.";
            speaker.promptAudio = new byte[16];
            speaker.promptSampleRate = 16000;
            speaker.persist();
            return speaker.id;
        });
    }
}
