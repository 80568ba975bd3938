package io.timbre.synthesis;

import io.micrometer.core.instrument.MeterRegistry;
import io.timbre.engine.EngineGauges;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.response.Response;
import io.timbre.account.TestUsers;
import jakarta.inject.Inject;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.function.BooleanSupplier;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Streamed synthesis over HTTP on the tiny pack: chunked WAV (unknown-length header) and raw PCM carrying exactly
 * the samples of the whole-clip answer, OpenAI's SSE stream, speed, and a client that disconnects cancelling
 * its work in the scheduler.
 */
@QuarkusTest
class StreamingTests {
    static final String TEXT = "Streaming starts early. It ends soon.";

    @TestHTTPResource("/")
    URL base;

    @Inject
    MeterRegistry registry;   // the engine's scheduler gauges, as /q/metrics shows them

    String key;
    String speakerId;

    @BeforeEach
    void speaker() throws Exception {
        key = TestUsers.createUser(TestUsers.uniqueName("stream"));
        speakerId = TestUsers.registerSpeaker(key, "streamer");
    }

    private HttpResponse<InputStream> post(String path, String json) throws Exception {
        HttpRequest r = HttpRequest.newBuilder(base.toURI().resolve(path)).header("Authorization", "Bearer " + key)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build();
        return HttpClient.newHttpClient().send(r, HttpResponse.BodyHandlers.ofInputStream());
    }

    @Test
    void streamedWavAndPcmCarryTheWholeClipsSamples() throws Exception {
        Response whole = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + speakerId + "\",\"seed\":21}")
                .post("/v1/tts").then().statusCode(200).extract().response();
        byte[] wav = whole.asByteArray();
        assertEquals(wav.length, Integer.parseInt(whole.header("Content-Length")), "the whole clip has its length");
        byte[] samples = Arrays.copyOfRange(wav, 44, wav.length);

        HttpResponse<InputStream> streamed = post("/v1/tts",
                "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + speakerId + "\",\"seed\":21,\"stream\":true,\"stream_unit\":\"segment\"}");
        assertEquals(200, streamed.statusCode());
        assertEquals("audio/wav", streamed.headers().firstValue("Content-Type").orElse(""));
        assertTrue(streamed.headers().firstValue("Content-Length").isEmpty(), "no length: chunked");
        assertEquals("memory", streamed.headers().firstValue("X-Timbre-Speaker-Source").orElse(""));
        byte[] body;
        try (InputStream in = streamed.body()) {
            body = in.readAllBytes();
        }
        ByteBuffer h = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals("RIFF", new String(body, 0, 4, StandardCharsets.US_ASCII));
        assertEquals(-1, h.getInt(4), "RIFF size unknown (0xFFFFFFFF)");
        assertEquals(-1, h.getInt(40), "data size unknown (0xFFFFFFFF)");
        assertEquals(24000, h.getInt(24));
        assertArrayEquals(samples, Arrays.copyOfRange(body, 44, body.length), "same samples as the whole clip");

        HttpResponse<InputStream> pcm = post("/v1/tts",
                "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + speakerId + "\",\"seed\":21,\"stream\":true,\"stream_unit\":\"segment\",\"format\":\"pcm\"}");
        assertEquals("audio/pcm", pcm.headers().firstValue("Content-Type").orElse(""));
        assertEquals("24000", pcm.headers().firstValue("X-Timbre-Sample-Rate").orElse(""));
        try (InputStream in = pcm.body()) {
            assertArrayEquals(samples, in.readAllBytes(), "raw PCM: the same samples, no header");
        }

        // by hop (the default unit): the same speech tokens, so as many samples, from the flow's streaming mode;
        // the same again for the same request
        byte[][] hops = new byte[2][];
        for (int i = 0; i < 2; i++) {
            HttpResponse<InputStream> hop = post("/v1/tts",
                    "{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + speakerId + "\",\"seed\":21,\"stream\":true,\"format\":\"pcm\"}");
            assertEquals(200, hop.statusCode());
            try (InputStream in = hop.body()) {
                hops[i] = in.readAllBytes();
            }
        }
        assertEquals(samples.length, hops[0].length, "by hop: as many samples as the whole clip");
        assertArrayEquals(hops[0], hops[1], "by hop: the same request, the same samples");
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"Hi.\",\"speakerId\":\"" + speakerId + "\",\"stream\":true,\"stream_unit\":\"word\"}")
                .post("/v1/tts").then().statusCode(422).contentType("application/problem+json");

        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"Hi.\",\"speakerId\":\"" + speakerId + "\",\"stream\":true}")
                .post("/v1/tts").then().statusCode(200).header("Transfer-Encoding", "chunked");
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"Hi.\",\"speakerId\":\"" + speakerId + "\",\"stream\":true,\"format\":\"mp3\"}")
                .post("/v1/tts").then().statusCode(422).contentType("application/problem+json");
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"Hi.\",\"speakerId\":\"" + speakerId + "\",\"speed\":9}")
                .post("/v1/tts").then().statusCode(422).contentType("application/problem+json");
    }

    @Test
    void openAiSseStreamAndSpeed() throws Exception {
        byte[] normal = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"Hello again.\",\"voice\":\"streamer\",\"response_format\":\"pcm\",\"seed\":2}")
                .post("/v1/audio/speech").then().statusCode(200).header("Transfer-Encoding", "chunked")
                .extract().asByteArray();
        byte[] fast = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"Hello again.\",\"voice\":\"streamer\",\"response_format\":\"pcm\",\"seed\":2,\"speed\":2.0}")
                .post("/v1/audio/speech").then().statusCode(200).extract().asByteArray();
        assertEquals(normal.length / 2, fast.length, "speed 2: half the samples");

        HttpResponse<InputStream> sse = post("/v1/audio/speech",
                "{\"model\":\"tts-1\",\"input\":\"Hello again.\",\"voice\":\"streamer\",\"response_format\":\"pcm\",\"seed\":2,\"stream_format\":\"sse\"}");
        assertEquals(200, sse.statusCode());
        assertTrue(sse.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        String events;
        try (InputStream in = sse.body()) {
            events = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        ObjectMapper json = new ObjectMapper();
        java.io.ByteArrayOutputStream audio = new java.io.ByteArrayOutputStream();
        JsonNode done = null;
        for (String block : events.split("\n\n")) {
            if (block.isBlank()) {
                continue;
            }
            assertTrue(block.startsWith("data: "), block);
            JsonNode e = json.readTree(block.substring(6));
            if (e.get("type").asText().equals("speech.audio.delta")) {
                assertNull(done, "no delta after done");
                audio.write(Base64.getDecoder().decode(e.get("audio").asText()));
            } else {
                assertEquals("speech.audio.done", e.get("type").asText());
                done = e;
            }
        }
        assertTrue(done != null && done.path("usage").path("output_tokens").asInt() > 0, events.substring(Math.max(0, events.length() - 200)));
        assertArrayEquals(normal, audio.toByteArray(), "the deltas are the PCM stream");
    }

    static void until(BooleanSupplier c, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!c.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(5);
        }
    }

    private void disconnectMidway(boolean stream) throws Exception {
        until(() -> EngineGauges.value(registry, "timbre.scheduler.rows") == 0, "an idle engine");
        double cancelled = EngineGauges.value(registry, "timbre.scheduler.cancelled");
        String longText = String.join(" ", java.util.Collections.nCopies(12, "This request will be abandoned by its client."));
        byte[] body = ("{\"text\":\"" + longText + "\",\"speakerId\":\"" + speakerId + "\",\"stream\":" + stream + "}")
                .getBytes(StandardCharsets.UTF_8);
        try (Socket socket = new Socket(base.getHost(), base.getPort())) {
            OutputStream out = socket.getOutputStream();
            out.write(("POST /v1/tts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + key
                    + "\r\nContent-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            until(() -> EngineGauges.value(registry, "timbre.scheduler.rows") > 0, "the request's rows in the batch");
        }
        until(() -> EngineGauges.value(registry, "timbre.scheduler.cancelled") == cancelled + 1, "the request to be cancelled");
        until(() -> EngineGauges.value(registry, "timbre.scheduler.rows") == 0, "its rows to leave the batch");
    }


    @Test
    void aClientThatDisconnectsCancelsItsWork() throws Exception {
        disconnectMidway(false);
        disconnectMidway(true);
        // the service keeps serving
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"text\":\"Still here.\",\"speakerId\":\"" + speakerId + "\"}")
                .post("/v1/tts").then().statusCode(200);
    }
}
