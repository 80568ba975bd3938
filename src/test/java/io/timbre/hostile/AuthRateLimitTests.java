package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.timbre.account.AuthRateLimiter;
import io.timbre.account.TestUsers;

/**
 * A client guessing keys: after {@code timbre.http.auth-failure-burst} (20) invalid keys from one address, that
 * address gets 429 with Retry-After whatever key it sends, the admin's included; other addresses are served.
 */
@QuarkusTest
class AuthRateLimitTests {

    static final String GUESSER = "127.0.0.2";

    @Test
    void aClientThatGuessesKeysIsSlowedDownAndOthersAreNot() throws Exception {
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        String name = TestUsers.uniqueName("never");
        for (int i = 0; i < 20; i++) {
            RawHttp.Answer answer = createUser(GUESSER, "tmb_guess" + i, name);
            assertEquals(401, answer.status(), answer.raw());
        }
        CompletableFuture<Integer> others = Hostile.othersRequest(other);
        RawHttp.Answer limited = createUser(GUESSER, "tmb_guess-again", name);
        assertEquals(429, limited.status(), limited.raw());
        assertEquals("application/problem+json", limited.header("content-type"), limited.raw());
        assertTrue(limited.body().contains("\"status\":429"), limited.raw());
        long retryAfter = Long.parseLong(limited.header("retry-after"));
        assertTrue(retryAfter >= 1 && retryAfter <= 5, limited.raw());
        // Even the right key is refused from that address until it has waited: guessing cannot go on.
        RawHttp.Answer admin = createUser(GUESSER, TestUsers.ADMIN_KEY, name);
        assertEquals(429, admin.status(), admin.raw());
        assertEquals(200, others.join());
        // Another address is not affected, and nothing was created by the refused requests.
        assertEquals(201, createUser("127.0.0.3", TestUsers.ADMIN_KEY, name).status());
        given().auth().oauth2(other).get("/v1/me").then().statusCode(200);
    }

    @Test
    void theLimiterRefillsAndForgetsTheLeastRecentClients() {
        AtomicLong now = new AtomicLong();
        AuthRateLimiter limiter = new AuthRateLimiter(2, 1_000_000_000L, 3, now::get);
        limiter.failed("a");
        assertTrue(limiter.retryAfterSeconds("a").isEmpty());
        limiter.failed("a");
        assertEquals(1, limiter.retryAfterSeconds("a").getAsLong());
        now.addAndGet(1_000_000_000L);
        assertTrue(limiter.retryAfterSeconds("a").isEmpty(), "one attempt back after one refill period");
        for (String client : new String[]{"b", "c", "d", "e"}) {
            limiter.failed(client);
        }
        assertEquals(3, limiter.clients(), "memory is bounded");
        assertTrue(limiter.retryAfterSeconds("a").isEmpty(), "the least recent client was forgotten");
    }

    private static RawHttp.Answer createUser(String from, String key, String name) throws Exception {
        String body = "{\"name\":\"" + name + "\"}";
        return RawHttp.exchange(from, "POST /v1/users HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                + "Authorization: Bearer " + key + "\r\nContent-Type: " + ContentType.JSON + "\r\nContent-Length: "
                + body.length() + "\r\n\r\n" + body);
    }
}
