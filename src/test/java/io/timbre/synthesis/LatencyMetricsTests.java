package io.timbre.synthesis;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheus.PrometheusMeterRegistry;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.timbre.account.TestUsers;
import io.timbre.engine.Synthesizer;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Time to first audio and the per-stage times of real requests on the tiny pack reach the metrics registry and
 * the Prometheus exposition of /q/metrics as histograms: one count per request, tagged by endpoint and stream mode
 * (whole clip, streamed by segment), and one per stage.
 */
@QuarkusTest
class LatencyMetricsTests {
    static final String TEXT = "First audio. Then the rest.";

    @Inject
    MeterRegistry registry;

    @Inject
    PrometheusMeterRegistry prometheus;

    @Test
    void everyAnswerCountsItsTimeToFirstAudioAndItsStages() {
        String key = TestUsers.createUser(TestUsers.uniqueName("latency"));
        String speaker;
        try {
            speaker = TestUsers.registerSpeaker(key, "latency");
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        List<String[]> tags = List.of(new String[] {"tts", "none"}, new String[] {"tts", "hop"},
                new String[] {"tts", "segment"}, new String[] {"speech", "hop"});
        List<String> stages = new ArrayList<>(List.of("features"));
        stages.addAll(LatencyMetrics.stageNanos(new Synthesizer.Timings(1, 1, 1, 1, 1, 5)).keySet());
        assertTrue(stages.containsAll(List.of("queue", "llm", "flow", "vocoder")), stages.toString());
        Map<String, Long> before = counts(tags, stages);

        byte[] whole = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + speaker + "\"}")
                .post("/v1/tts").then().statusCode(200).extract().asByteArray();
        byte[] streamed = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + speaker + "\",\"stream\":true}")
                .post("/v1/tts").then().statusCode(200).extract().asByteArray();
        byte[] bySegment = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"text\":\"" + TEXT + "\",\"speakerId\":\"" + speaker + "\",\"stream\":true,\"stream_unit\":\"segment\"}")
                .post("/v1/tts").then().statusCode(200).extract().asByteArray();
        byte[] speech = given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"" + TEXT + "\",\"voice\":\"" + speaker + "\",\"response_format\":\"pcm\"}")
                .post("/v1/audio/speech").then().statusCode(200).extract().asByteArray();
        assertTrue(whole.length > 44 && streamed.length > 44 && bySegment.length > 44 && speech.length > 0, "audio came back");

        Map<String, Long> after = counts(tags, stages);
        for (String[] t : tags) {
            String k = "first-audio " + t[0] + "/" + t[1];
            assertEquals(before.get(k) + 1, after.get(k), k + ": one request, one count");
        }
        for (String s : stages) {
            assertEquals(before.get("stage " + s) + 4, after.get("stage " + s), s + ": four requests");
        }

        // the Prometheus exposition (what /q/metrics serves) carries them as histograms with buckets
        String text = prometheus.scrape();
        for (String[] t : tags) {
            long count = promCount(text, "timbre_tts_first_audio_seconds", "endpoint=\"" + t[0] + "\"", "stream=\"" + t[1] + "\"");
            assertEquals(after.get("first-audio " + t[0] + "/" + t[1]), count, "exposed count " + t[0] + "/" + t[1]);
            assertTrue(Pattern.compile("(?m)^timbre_tts_first_audio_seconds_bucket\\{[^}]*endpoint=\"" + t[0]
                    + "\"[^}]*le=\"\\+Inf\"[^}]*} ").matcher(text).find()
                    || Pattern.compile("(?m)^timbre_tts_first_audio_seconds_bucket\\{[^}]*le=\"\\+Inf\"[^}]*endpoint=\""
                    + t[0] + "\"").matcher(text).find(), "histogram buckets for " + t[0]);
        }
        for (String s : stages) {
            assertEquals(after.get("stage " + s), promCount(text, "timbre_engine_stage_seconds", "stage=\"" + s + "\""),
                    "exposed stage " + s);
        }
        assertTrue(text.contains("timbre_engine_stage_seconds_bucket{"), "stage histogram buckets");
    }

    private Map<String, Long> counts(List<String[]> tags, List<String> stages) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (String[] t : tags) {
            Timer timer = registry.find(LatencyMetrics.FIRST_AUDIO).tags("endpoint", t[0], "stream", t[1]).timer();
            out.put("first-audio " + t[0] + "/" + t[1], timer == null ? 0 : timer.count());
        }
        for (String s : stages) {
            Timer timer = registry.find(LatencyMetrics.STAGE).tag("stage", s).timer();
            out.put("stage " + s, timer == null ? 0 : timer.count());
        }
        return out;
    }

    /** The value of {@code name_count} on the line whose labels hold every one of {@code labels}. */
    private static long promCount(String text, String name, String... labels) {
        Matcher m = Pattern.compile("(?m)^" + name + "_count\\{([^}]*)} ([0-9.eE+]+)$").matcher(text);
        while (m.find()) {
            boolean all = true;
            for (String l : labels) {
                all &= m.group(1).contains(l);
            }
            if (all) {
                return (long) Double.parseDouble(m.group(2));
            }
        }
        return -1;
    }
}
