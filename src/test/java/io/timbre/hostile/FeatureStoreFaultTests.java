package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.timbre.account.TestUsers;
import io.timbre.speaker.FeatureJanitor;
import io.timbre.speaker.FeatureStore;
import jakarta.inject.Inject;

/**
 * A feature directory that cannot be written answers registrations with 503 problem+json (507 when the device is
 * full) and turns readiness DOWN with the reason; leftovers of interrupted registrations are removed at startup.
 */
@QuarkusTest
@TestProfile(FeatureStoreFaultTests.OwnFeatureDir.class)
class FeatureStoreFaultTests {

    static final Path DIR = Path.of("target/test-features-fault");

    public static class OwnFeatureDir implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.feature-dir", DIR.toString());
        }
    }

    @Inject
    FeatureJanitor janitor;

    @Test
    void anUnwritableFeatureDirectoryIsA503AndReadinessSaysWhy() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("homeless"));
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        given().get("/q/health/ready").then().statusCode(200);
        Path moved = DIR.resolveSibling(DIR.getFileName() + ".moved");
        Files.createDirectories(DIR);
        Files.move(DIR, moved);
        Files.writeString(DIR, "not a directory");   // what a broken mount looks like to the service
        try {
            CompletableFuture<Integer> others = Hostile.othersRequest(other);
            given().auth().oauth2(key).multiPart("name", "v").multiPart("promptText", "A steady vowel.")
                    .multiPart("audio", "p.wav", Files.readAllBytes(TestUsers.PROMPT), "audio/wav")
                    .post("/v1/speakers").then().statusCode(503).contentType("application/problem+json")
                    .header("Retry-After", "30")
                    .body("type", equalTo("urn:timbre:problem:feature-store-unavailable"))
                    .body("detail", containsString("nothing was saved"))
                    .body("detail", org.hamcrest.Matchers.not(containsString(DIR.toString())));
            assertEquals(200, others.join());
            given().get("/q/health/ready").then().statusCode(503).body("status", equalTo("DOWN"))
                    .body("checks.find { it.name == 'feature-store' }.status", equalTo("DOWN"))
                    .body("checks.find { it.name == 'feature-store' }.data.error", containsString("feature directory"));
            given().get("/q/health/live").then().statusCode(200);
            given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("size()", equalTo(0));
        } finally {
            Files.delete(DIR);
            Files.move(moved, DIR);
        }
        given().get("/q/health/ready").then().statusCode(200);
        TestUsers.registerSpeaker(key, "v");
    }

    @Test
    void aFullDeviceIs507AndAReadOnlyOneIs503() {
        assertEquals(507, FeatureStore.problemFor(new FileSystemException("f", null, "No space left on device")).status());
        assertEquals(503, FeatureStore.problemFor(new FileSystemException("f", null, "Read-only file system")).status());
        assertTrue(FeatureStore.problemFor(new FileSystemException("f", null, "Read-only file system")).detail()
                .contains("read-only"));
        assertEquals(503, FeatureStore.problemFor(new AccessDeniedException("f")).status());
        assertEquals(503, FeatureStore.problemFor(new IOException("disk on fire")).status());
    }

    @Test
    void leftoversOfInterruptedRegistrationsAreRemovedButNotOthersWork() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("survivor"));
        String kept = TestUsers.registerSpeaker(key, "kept") + ".pt";
        Files.createDirectories(DIR);
        Instant old = Instant.now().minus(Duration.ofHours(1));
        Path staleTemp = plant("." + UUID.randomUUID() + "123.tmp", old);
        Path staleOrphan = plant(UUID.randomUUID() + ".pt", old);
        Path freshTemp = plant("." + UUID.randomUUID() + "456.tmp", Instant.now());      // another replica's write
        Path freshOrphan = plant(UUID.randomUUID() + ".pt", Instant.now());             // row not committed yet
        Files.setLastModifiedTime(DIR.resolve(kept), FileTime.from(old));

        assertTrue(janitor.removeLeftovers() >= 2);

        assertFalse(Files.exists(staleTemp));
        assertFalse(Files.exists(staleOrphan));
        assertTrue(Files.exists(freshTemp), "within the grace period: maybe another replica's registration");
        assertTrue(Files.exists(freshOrphan));
        assertTrue(Files.exists(DIR.resolve(kept)), "a speaker's file stays");
        try (Stream<Path> files = Files.list(DIR)) {
            assertTrue(files.anyMatch(p -> p.getFileName().toString().equals(kept)));
        }
        given().auth().oauth2(key).get("/v1/speakers").then().body("name", hasItem("kept"));
        Files.delete(freshTemp);
        Files.delete(freshOrphan);
    }

    private static Path plant(String name, Instant modified) throws IOException {
        Path file = Files.write(DIR.resolve(name), new byte[]{1, 2, 3});
        Files.setLastModifiedTime(file, FileTime.from(modified));
        return file;
    }
}
