package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import javax.sql.DataSource;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;
import io.timbre.speaker.FeatureStore;
import jakarta.inject.Inject;

/**
 * Races between a speaker's deletion and other work on it. The deletion is made to land at the worst moment
 * by holding it open in a transaction of the test's own until the other request waits on its row lock.
 */
@QuarkusTest
class SpeakerRaceTests {

    @Inject
    DataSource database;

    @Inject
    FeatureStore store;

    @Test
    void selectingASpeakerThatIsBeingDeletedIsNotFound() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("racer"));
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        String speaker = TestUsers.registerSpeaker(key, "doomed");
        Response put;
        try (Connection deleting = database.getConnection()) {
            deleting.setAutoCommit(false);
            deleteRow(deleting, speaker);
            // The PUT finds the speaker (the deletion is not committed) and then waits on its row lock.
            CompletableFuture<Response> selecting = CompletableFuture.supplyAsync(() -> given().auth().oauth2(key)
                    .contentType(ContentType.JSON).body("{\"speakerId\":\"" + speaker + "\"}").put("/v1/me/speaker"));
            awaitLockWaiter();
            assertEquals(200, Hostile.othersRequest(other).join(), "another user is served meanwhile");
            deleting.commit();
            put = selecting.get(60, TimeUnit.SECONDS);
        }
        put.then().statusCode(404).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:speaker-not-found"));
        given().auth().oauth2(key).get("/v1/me").then().statusCode(200).body("currentSpeakerId", nullValue());
    }

    @Test
    void deletingASpeakerWhileItsFileIsRepairedLeavesNoFile() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("repair"));
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        String speaker = TestUsers.registerSpeaker(key, "mended");
        UUID id = UUID.fromString(speaker);
        // Lose the file and the cached copy: the next synthesis re-extracts the features and rewrites the file.
        store.evict(id);
        Files.delete(store.file(id + ".pt"));
        Response tts;
        try (Connection deleting = database.getConnection()) {
            deleting.setAutoCommit(false);
            deleteRow(deleting, speaker);
            CompletableFuture<Response> synthesis = CompletableFuture.supplyAsync(() -> given().auth().oauth2(key)
                    .contentType(ContentType.JSON).body("{\"text\":\"Hi.\",\"speakerId\":\"" + speaker + "\"}")
                    .post("/v1/tts"));
            awaitLockWaiter();   // the repair has written the file and waits to record it
            assertEquals(200, Hostile.othersRequest(other).join(), "another user is served meanwhile");
            deleting.commit();
            // What DELETE /v1/speakers/{id} does after its commit; the repair's file comes back if it is not careful.
            store.delete(id + ".pt");
            tts = synthesis.get(120, TimeUnit.SECONDS);
        }
        tts.then().statusCode(404).contentType("application/problem+json")
                .body("type", equalTo("urn:timbre:problem:speaker-not-found"));
        assertFalse(Files.exists(store.file(id + ".pt")), "the deleted speaker's file is gone");
    }

    private static void deleteRow(Connection connection, String speaker) throws Exception {
        try (PreparedStatement delete = connection.prepareStatement("DELETE FROM speakers WHERE id = ?")) {
            delete.setObject(1, UUID.fromString(speaker));
            assertEquals(1, delete.executeUpdate());
        }
    }

    /** Waits until some session of the database waits on a lock (bounded: fails after a minute). */
    private void awaitLockWaiter() throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        try (Connection watcher = database.getConnection()) {
            while (System.nanoTime() < deadline) {
                try (ResultSet r = watcher.createStatement().executeQuery(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")) {
                    r.next();
                    if (r.getInt(1) > 0) {
                        return;
                    }
                }
                Thread.sleep(50);
            }
        }
        assertTrue(false, "no request came to wait on the speaker's row lock");
    }
}
