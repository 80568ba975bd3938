package io.timbre.api;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.timbre.account.TestUsers;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;

/**
 * The database goes away and comes back: meanwhile requests get 503 problem+json and readiness is DOWN;
 * afterwards the service answers again by itself, with its data, without a restart.
 */
@QuarkusTest
@TestProfile(DatabaseRecoveryTests.OwnDatabase.class)
@WithTestResource(DatabaseRecoveryTests.RestartablePostgres.class)
class DatabaseRecoveryTests {

    public static class OwnDatabase implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.embedded-postgres.enabled", "false",
                    "quarkus.datasource.jdbc.acquisition-timeout", "2S");
        }
    }

    /** A PostgreSQL this test can stop and start again on the same port and data directory. */
    public static class RestartablePostgres implements QuarkusTestResourceLifecycleManager {
        static EmbeddedPostgres pg;
        static int port;
        static Path dir;

        @Override
        public Map<String, String> start() {
            try {
                try (ServerSocket s = new ServerSocket(0)) {
                    port = s.getLocalPort();
                }
                dir = Files.createTempDirectory("timbre-recovery");
                pg = boot();
                return Map.of("quarkus.datasource.jdbc.url", "jdbc:postgresql://localhost:" + port + "/postgres",
                        "quarkus.datasource.username", "postgres", "quarkus.datasource.password", "postgres");
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }

        static EmbeddedPostgres boot() throws IOException {
            return EmbeddedPostgres.builder().setPort(port).setDataDirectory(dir).setCleanDataDirectory(false).start();
        }

        @Override
        public void stop() {
            try {
                if (pg != null) {
                    pg.close();
                }
            } catch (IOException ignored) {
                // already stopped
            }
        }
    }

    @Test
    void serviceResumesWhenTheDatabaseReturns() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("recover"));
        given().auth().oauth2(key).get("/v1/me").then().statusCode(200);

        RestartablePostgres.pg.close();
        given().auth().oauth2(key).get("/v1/me").then().statusCode(503).contentType("application/problem+json")
                .header("Retry-After", "5");
        given().get("/q/health/ready").then().statusCode(503).body("status", equalTo("DOWN"));

        RestartablePostgres.pg = RestartablePostgres.boot();
        long deadline = System.currentTimeMillis() + 30_000;
        int status = 0;
        while (System.currentTimeMillis() < deadline && status != 200) {
            status = given().auth().oauth2(key).get("/v1/me").statusCode();
            if (status != 200) {
                Thread.sleep(500);
            }
        }
        given().auth().oauth2(key).get("/v1/me").then().statusCode(200);
        given().get("/q/health/ready").then().statusCode(200);
    }
}
