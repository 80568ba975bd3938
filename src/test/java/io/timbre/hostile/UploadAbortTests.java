package io.timbre.hostile;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.timbre.account.TestUsers;

/**
 * Uploads that go wrong on the client's side: a chunked body (no Content-Length) over the size limit gets a
 * 413 problem (it was an empty 413), and uploads the client abandons midway are not logged as server errors
 * with stack traces (each one was an ERROR with a trace).
 */
@QuarkusTest
class UploadAbortTests {

    @Test
    void anOversizeChunkedUploadIsAContentTooLargeProblem() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("chunky"));
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        Set<String> before = Hostile.featureFiles();
        CompletableFuture<Integer> others = Hostile.othersRequest(other);
        RawHttp.Answer answer;
        try (Socket s = RawHttp.connect("127.0.0.1", 60_000)) {
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/speakers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + key + "\r\n"
                    + "Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            byte[] chunk = new byte[64 * 1024];
            String size = Integer.toHexString(chunk.length) + "\r\n";
            try {
                for (int sent = 0; sent <= 21 << 20; sent += chunk.length) {   // over the 20M limit
                    out.write(size.getBytes(StandardCharsets.US_ASCII));
                    out.write(chunk);
                    out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
                }
                out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                out.flush();
            } catch (IOException closedByServer) {
                // the server answered and closed before the end of the body: what we want to read
            }
            answer = RawHttp.Answer.parse(RawHttp.readAll(s.getInputStream()));
        }
        assertEquals(413, answer.status(), answer.raw());
        assertEquals("application/problem+json", answer.header("content-type"), answer.raw());
        assertTrue(answer.body().contains("\"status\":413"), answer.raw());
        assertTrue(answer.body().contains("20971520 bytes"), answer.raw());
        assertEquals(200, others.join());
        given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("size()", equalTo(0));
        assertEquals(before, Hostile.featureFiles(), "no feature file was written");
    }

    /**
     * A fast chunked body far over the limit (256 MiB of JSON to /v1/tts, 256 MiB of multipart to /v1/speakers) is
     * refused while it arrives: 413 problem+json and the connection closed once the limit is passed, so the client
     * cannot send the rest and the server never buffers it. Prints the resident-memory and heap change.
     */
    @Test
    void aFastChunkedBodyFarOverTheLimitIsRefusedWhileItArrives() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("flood"));
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        Set<String> before = Hostile.featureFiles();
        long total = 256L << 20;
        String[][] requests = {
                {"/v1/tts", "application/json", "{\"text\":\""},
                {"/v1/speakers", "multipart/form-data; boundary=XyZ",
                        "--XyZ\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\nRIFF"}};
        for (String[] r : requests) {
            System.gc();
            long rssBefore = rssKb();
            long heapBefore = Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory();
            CompletableFuture<Integer> others = Hostile.othersRequest(other);
            long sent = 0;
            RawHttp.Answer answer;
            try (Socket s = RawHttp.connect("127.0.0.1", 60_000)) {
                OutputStream out = s.getOutputStream();
                out.write(("POST " + r[0] + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + key + "\r\n"
                        + "Content-Type: " + r[1] + "\r\nTransfer-Encoding: chunked\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                byte[] head = r[2].getBytes(StandardCharsets.US_ASCII);
                out.write((Integer.toHexString(head.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
                out.write(head);
                out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
                byte[] chunk = new byte[256 * 1024];
                java.util.Arrays.fill(chunk, (byte) 'a');
                byte[] size = (Integer.toHexString(chunk.length) + "\r\n").getBytes(StandardCharsets.US_ASCII);
                try {
                    while (sent < total) {
                        out.write(size);
                        out.write(chunk);
                        out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
                        sent += chunk.length;
                    }
                    out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                    out.flush();
                } catch (IOException closedByServer) {
                    // the server answered and closed mid-body
                }
                answer = RawHttp.Answer.parse(RawHttp.readAll(s.getInputStream()));
            }
            long heapAfter = Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory();
            System.out.printf("chunked %s: client sent %d of %d MiB before the server closed; RSS %+d MB, heap %+d MB%n",
                    r[0], sent >> 20, total >> 20, (rssKb() - rssBefore) / 1024, (heapAfter - heapBefore) >> 20);
            assertEquals(413, answer.status(), r[0] + ": " + answer.raw());
            assertEquals("application/problem+json", answer.header("content-type"), answer.raw());
            assertTrue(answer.body().contains("\"status\":413") && answer.body().contains("20971520 bytes"), answer.raw());
            assertTrue(sent < total, r[0] + ": the server read the whole " + (total >> 20) + " MiB instead of closing at the limit");
            assertEquals(200, others.join(), "another user's request was served");
        }
        given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("size()", equalTo(0));
        assertEquals(before, Hostile.featureFiles(), "no feature file was written");
    }

    private static long rssKb() throws IOException {
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }

    @Test
    void abandonedUploadsAreNotLoggedAsServerErrors() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("quitter"));
        String other = TestUsers.createUser(TestUsers.uniqueName("bystander"));
        List<LogRecord> records = new CopyOnWriteArrayList<>();
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord record) {
                if (record.getLevel().intValue() >= Level.WARNING.intValue()) {
                    records.add(record);
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        Logger root = Logger.getLogger("");
        root.addHandler(capture);
        int aborted = 5;
        try {
            for (int i = 0; i < aborted; i++) {
                try (Socket s = RawHttp.connect("127.0.0.1", 10_000)) {
                    s.getOutputStream().write(("POST /v1/speakers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
                            + key + "\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000\r\n\r\n"
                            + "--XyZ\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n"
                            + "RIFF....WAVEfmt ").getBytes(StandardCharsets.US_ASCII));
                    s.getOutputStream().flush();
                    Thread.sleep(200);   // let the server start reading the body, then leave
                }
            }
            // Another user's upload goes through meanwhile, and the server has handled the closed connections.
            TestUsers.registerSpeaker(other, "steady");
            given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("size()", equalTo(0));
            Thread.sleep(1000);
        } finally {
            root.removeHandler(capture);
        }
        List<String> traced = records.stream().filter(r -> r.getThrown() != null)
                .map(r -> r.getLoggerName() + ": " + r.getMessage()).toList();
        assertEquals(List.of(), traced, "no stack trace for a client that left");
        assertTrue(records.size() <= aborted, "at most one line per abandoned upload: " + records.stream()
                .map(r -> r.getLoggerName() + ": " + r.getMessage()).toList());
    }
}
