package io.timbre.it;

import io.restassured.RestAssured;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.restassured.specification.RequestSpecification;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packaged application, started twice on the same data directory (embedded PostgreSQL and feature files):
 * users, keys, speakers and the current-speaker choice survive the restart, and the same text, speaker and
 * seed give the same audio afterwards (features read back from the file, not recomputed). No admin key is
 * configured: the first start generates one in the data directory, the restart keeps it, the dev key is refused.
 */
class RestartIT {
    static final Path JAR = Path.of("target/quarkus-app/quarkus-run.jar");

    @Test
    void restartKeepsUsersSpeakersAndAudio(@TempDir Path data) throws Exception {
        assertTrue(Files.isRegularFile(JAR), "package the application first (mvn verify does)");
        String key;
        String speaker;
        byte[] before;
        try (App app = App.start(data)) {
            key = app.given().auth().oauth2(app.adminKey()).contentType(ContentType.JSON)
                    .body("{\"name\":\"restart\"}").post("/v1/users").then().statusCode(201).extract().path("apiKey");
            speaker = app.given().auth().oauth2(key).multiPart("name", "v").multiPart("promptText", "A steady vowel.")
                    .multiPart("audio", "p.wav", Files.readAllBytes(Path.of("models/tiny/golden/tone.wav")), "audio/wav")
                    .post("/v1/speakers").then().statusCode(201).extract().path("id");
            app.given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + speaker + "\"}")
                    .put("/v1/me/speaker").then().statusCode(200);
            before = tts(app, key).asByteArray();
        }
        // What a registration killed midway (kill -9) leaves: a temporary file and a file no speaker row names.
        java.nio.file.attribute.FileTime old = java.nio.file.attribute.FileTime.from(
                java.time.Instant.now().minus(java.time.Duration.ofHours(1)));
        Path leftTemp = Files.write(data.resolve("features").resolve("." + java.util.UUID.randomUUID() + "77.tmp"), new byte[8]);
        Path leftOrphan = Files.write(data.resolve("features").resolve(java.util.UUID.randomUUID() + ".pt"), new byte[8]);
        Files.setLastModifiedTime(leftTemp, old);
        Files.setLastModifiedTime(leftOrphan, old);
        try (App app = App.start(data)) {
            assertTrue(!Files.exists(leftTemp) && !Files.exists(leftOrphan), "the restart removed the leftovers");
            app.given().auth().oauth2("timbre-dev-admin-key").contentType(ContentType.JSON).body("{\"name\":\"dev\"}")
                    .post("/v1/users").then().statusCode(401);   // the published dev key is no key here
            app.given().auth().oauth2(app.adminKey()).contentType(ContentType.JSON).body("{\"name\":\"again\"}")
                    .post("/v1/users").then().statusCode(201);   // the generated key survives the restart
            app.given().auth().oauth2(key).get("/v1/me").then().statusCode(200)
                    .body("currentSpeakerId", org.hamcrest.Matchers.equalTo(speaker));
            app.given().auth().oauth2(key).get("/v1/speakers").then().body("id", org.hamcrest.Matchers.contains(speaker));
            Response r = tts(app, key);
            assertEquals("file", r.header("X-Timbre-Speaker-Source"), "features come from the feature file after a restart");
            assertArrayEquals(before, r.asByteArray(), "same text, speaker and seed give the same audio after a restart");
        }
    }

    private static Response tts(App app, String key) {
        Response r = app.given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"text\":\"Hi.\",\"seed\":5}").post("/v1/tts");
        r.then().statusCode(200).contentType("audio/wav");
        return r;
    }

    /** The packaged app as a child process on a free port, stopped with SIGTERM. */
    record App(Process process, int port, Path log, Path data) implements AutoCloseable {
        static App start(Path data) throws Exception {
            int port;
            try (ServerSocket s = new ServerSocket(0)) {
                port = s.getLocalPort();
            }
            Path log = Files.createTempFile("timbre-it", ".log");
            Process p = new ProcessBuilder(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Dquarkus.profile=embedded", "-Dtimbre.data-dir=" + data, "-Dquarkus.http.port=" + port, "-jar", JAR.toString()))
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            App app = new App(p, port, log, data);
            long deadline = System.nanoTime() + 180_000_000_000L;
            while (System.nanoTime() < deadline) {
                if (!p.isAlive()) {
                    throw new AssertionError("the application exited: " + Files.readString(log));
                }
                try {
                    if (app.given().get("/q/health/ready").statusCode() == 200) {
                        return app;
                    }
                } catch (Exception notYet) {
                    // not listening yet
                }
                Thread.sleep(500);
            }
            app.close();
            throw new AssertionError("not ready within 180 s: " + Files.readString(log));
        }

        RequestSpecification given() {
            return RestAssured.given().baseUri("http://127.0.0.1").port(port);
        }

        /** The key the embedded profile generated at first start (no admin key is configured here). */
        String adminKey() throws IOException {
            return Files.readString(data.resolve("admin-key")).strip();
        }

        @Override
        public void close() throws IOException, InterruptedException {
            process.destroy();   // SIGTERM: Quarkus shuts down, the embedded PostgreSQL stops with it
            if (!process.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
            Files.deleteIfExists(log);
        }
    }
}
