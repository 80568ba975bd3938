package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.timbre.account.TestUsers;
import io.timbre.api.UploadGuard;
import jakarta.inject.Inject;

/**
 * 300 clients that start a speaker upload and then send its body one byte a second. Health, another user's
 * requests and new uploads beyond the bound keep being answered; every slow client is answered 408 (body
 * deadline) or 503 (upload slots full) and disconnected; nothing is registered.
 */
@QuarkusTest
@TestProfile(SlowClientTests.ShortDeadline.class)
class SlowClientTests {

    static final int SLOW_CLIENTS = 300;
    static final int UPLOAD_SLOTS = 16;

    public static class ShortDeadline implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.http.body-timeout", "4s",
                    "timbre.http.max-concurrent-uploads", Integer.toString(UPLOAD_SLOTS));
        }
    }

    @Inject
    UploadGuard guard;

    @Test
    void slowUploadsAreCutOffAndEveryoneElseIsServed() throws Exception {
        String attacker = TestUsers.createUser(TestUsers.uniqueName("slow"));
        String other = TestUsers.createUser(TestUsers.uniqueName("patient"));
        String head = "POST /v1/speakers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + attacker + "\r\n"
                + "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000\r\n\r\n"
                + "--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n";
        List<Socket> slow = new ArrayList<>();
        ScheduledExecutorService trickle = Executors.newSingleThreadScheduledExecutor();
        try {
            for (int i = 0; i < SLOW_CLIENTS; i++) {
                Socket s = RawHttp.connect("127.0.0.1", 60_000);
                s.getOutputStream().write(head.getBytes(StandardCharsets.US_ASCII));
                s.getOutputStream().flush();
                slow.add(s);
            }
            trickle.scheduleAtFixedRate(() -> slow.forEach(SlowClientTests::sendOneByte), 1, 1, TimeUnit.SECONDS);

            long[] millis = new long[30];
            for (int i = 0; i < millis.length; i++) {
                String path = i % 2 == 0 ? "/q/health/ready" : "/q/health/live";
                long t0 = System.nanoTime();
                given().get(path).then().statusCode(200).body("status", equalTo("UP"));
                millis[i] = (System.nanoTime() - t0) / 1_000_000;
            }
            given().auth().oauth2(other).get("/v1/me").then().statusCode(200);
            Arrays.sort(millis);
            System.out.printf("health latency under %d slow uploads: median %d ms, max %d ms (%d requests)%n",
                    SLOW_CLIENTS, millis[millis.length / 2], millis[millis.length - 1], millis.length);

            int timedOut = 0;
            int busy = 0;
            for (Socket s : slow) {
                RawHttp.Answer answer = RawHttp.Answer.parse(RawHttp.readAll(s.getInputStream()));
                assertTrue(answer.status() == 408 || answer.status() == 503, answer.raw());
                assertEquals("application/problem+json", answer.header("content-type"), answer.raw());
                assertEquals("close", answer.header("connection"), answer.raw());
                if (answer.status() == 408) {
                    timedOut++;
                } else {
                    assertEquals("5", answer.header("retry-after"), answer.raw());
                    busy++;
                }
            }
            System.out.printf("slow uploads: %d answered 408 at the body deadline, %d refused 503 (slots full)%n",
                    timedOut, busy);
            // Every slot held a slow client until its deadline (clients that connected after a deadline freed a
            // slot took it in turn); the others were refused at once.
            assertTrue(timedOut >= UPLOAD_SLOTS, timedOut + " answered 408");
            assertTrue(busy > 0, "uploads beyond the slots are refused");
            assertEquals(SLOW_CLIENTS, timedOut + busy);
        } finally {
            trickle.shutdownNow();
            for (Socket s : slow) {
                s.close();
            }
        }
        given().auth().oauth2(attacker).get("/v1/speakers").then().statusCode(200).body("size()", equalTo(0));
        given().auth().oauth2(other).get("/v1/me").then().statusCode(200);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (guard.uploadsInProgress() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(100);
        }
        assertEquals(0, guard.uploadsInProgress(), "every upload slot is free again");
        TestUsers.registerSpeaker(other, "after-the-storm");
    }

    private static void sendOneByte(Socket s) {
        try {
            OutputStream out = s.getOutputStream();
            out.write('x');
            out.flush();
        } catch (IOException closedByServer) {
            // expected once the server has answered 408 or 503
        }
    }
}
