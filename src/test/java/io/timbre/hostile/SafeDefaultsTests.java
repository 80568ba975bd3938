package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Optional;
import java.util.Properties;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.response.ValidatableResponse;
import io.timbre.account.AdminKey;
import io.timbre.account.TestUsers;

/**
 * Defaults an attacker would try first: the published admin key, a service open on every interface, and a page
 * that can be framed. (The packaged app's behaviour, generated key and refusal of the dev key, is in RestartIT.)
 */
@QuarkusTest
class SafeDefaultsTests {

    @Test
    void thePackagedAppRefusesThePublishedKeys(@TempDir Path data) {
        for (String published : new String[]{"timbre-dev-admin-key", "REPLACE_ME"}) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> AdminKey.resolve(Optional.of(published), data, true, true));
            assertTrue(e.getMessage().contains("published"), e.getMessage());
        }
        assertEquals("timbre-dev-admin-key", AdminKey.resolve(Optional.of("timbre-dev-admin-key"), data, false, false),
                "dev mode and tests keep the documented key");
        assertThrows(IllegalStateException.class, () -> AdminKey.resolve(Optional.empty(), data, true, false),
                "prod without a key does not start");
        assertEquals(0, data.toFile().list().length, "nothing was written");
    }

    @Test
    void theEmbeddedProfileGeneratesAKeyOnceAndKeepsIt(@TempDir Path data) throws Exception {
        String generated = AdminKey.resolve(Optional.empty(), data, true, true);
        assertTrue(generated.startsWith("tmb_") && generated.length() > 40, generated);
        Path file = data.resolve("admin-key");
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        assertEquals(generated, AdminKey.resolve(Optional.of(" "), data, true, true), "a restart keeps the key");
        assertEquals("mine-0123456789abcdef", AdminKey.resolve(Optional.of("mine-0123456789abcdef"), data, true, true));
    }

    @Test
    void thePackagedAppListensOnLoopbackUnlessToldOtherwise() throws Exception {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(Path.of("src/main/resources/application.properties"))) {
            p.load(r);
        }
        assertEquals("127.0.0.1", p.getProperty("%prod.quarkus.http.host"));
        assertEquals("127.0.0.1", p.getProperty("%embedded.quarkus.http.host"));
        for (String dockerfile : new String[]{"src/main/docker/Dockerfile.jvm", "src/main/docker/Dockerfile.gpu"}) {
            assertTrue(Files.readString(Path.of(dockerfile)).contains("QUARKUS_HTTP_HOST=0.0.0.0"),
                    dockerfile + " listens on all interfaces of its container");
        }
    }

    @Test
    void pageAndApiAnswersCannotBeFramedOrSniffed() {
        String key = TestUsers.createUser(TestUsers.uniqueName("headers"));
        for (ValidatableResponse r : new ValidatableResponse[]{
                given().get("/").then().statusCode(200),
                given().auth().oauth2(key).get("/v1/me").then().statusCode(200),
                given().get("/v1/me").then().statusCode(401).contentType("application/problem+json"),
                given().get("/no/such/page").then().statusCode(404)}) {
            r.header("X-Frame-Options", equalTo("DENY"))
                    .header("Content-Security-Policy", equalTo("frame-ancestors 'none'"))
                    .header("X-Content-Type-Options", equalTo("nosniff"))
                    .header("Referrer-Policy", equalTo("no-referrer"));
        }
    }
}
