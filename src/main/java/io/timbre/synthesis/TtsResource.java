package io.timbre.synthesis;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.timbre.account.CurrentUser;
import io.timbre.account.User;
import io.timbre.api.ApiProblem;
import io.timbre.audio.WavCodec;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.Synthesizer;
import io.timbre.speaker.Speaker;
import io.timbre.speaker.SpeakerResource;
import io.timbre.speaker.SpeakerService;
import io.timbre.speaker.SpeakerService.Source;
import io.quarkus.narayana.jta.QuarkusTransaction;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.resteasy.reactive.RestForm;
import org.jboss.resteasy.reactive.multipart.FileUpload;

import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * POST /v1/tts: with a speaker (the request's, else the user's current one) from cached features; without
 * one, zero-shot from audio in the same request (multipart), computing features for that request only.
 */
@Path("/v1/tts")
public class TtsResource {
    public static final int MAX_TEXT = 4096;
    public static final String AUDIO_WAV = "audio/wav";

    public record TtsRequest(String text, UUID speakerId, Long seed) {
    }

    private final Engine engine;
    private final SpeakerService speakers;
    private final CurrentUser user;
    private final MeterRegistry registry;
    private final Semaphore slots;
    private final long queueMillis;

    TtsResource(Engine engine, SpeakerService speakers, CurrentUser user, MeterRegistry registry,
                io.timbre.config.TimbreConfig config) {
        this.engine = engine;
        this.speakers = speakers;
        this.user = user;
        this.registry = registry;
        this.slots = Slots.get(config.engine().concurrentRequests());
        this.queueMillis = config.engine().queueTimeout().toMillis();
    }

    /** One semaphore per JVM: the resource is request-scoped by default in Quarkus REST. */
    static final class Slots {
        private static Semaphore semaphore;

        static synchronized Semaphore get(int permits) {
            if (semaphore == null) {
                semaphore = new Semaphore(Math.max(1, permits), true);
            }
            return semaphore;
        }
    }

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces({AUDIO_WAV, "application/problem+json"})
    @Operation(summary = "Speak text with a speaker: speakerId, else your current speaker")
    public Response speak(TtsRequest request) {
        long userId = user.requireUserId();
        if (request == null) {
            throw ApiProblem.badRequest("Send a JSON object: {\"text\": \"...\", \"speakerId\": \"...\" (optional), \"seed\": 0 (optional)}.");
        }
        String text = checkText(request.text());
        UUID speakerId = request.speakerId() != null ? request.speakerId()
                : QuarkusTransaction.requiringNew().call(() -> User.<User>findById(userId).currentSpeakerId);
        if (speakerId == null) {
            throw ApiProblem.unprocessable("no-speaker", "No speaker",
                    "You have no current speaker and named none. Register one (POST /v1/speakers) and select it "
                            + "(PUT /v1/me/speaker), pass \"speakerId\", or clone zero-shot: send multipart/form-data "
                            + "with 'text', 'promptText' and 'audio' (a 3-30 s WAV).");
        }
        Speaker speaker = speakers.get(userId, speakerId);
        try (SpeakerService.Resolved features = withSlot(() -> speakers.features(speaker))) {
            return synthesize(text, features.features(), features.source(), features.nanos(), seed(request.seed()));
        }
    }

    @POST
    @Consumes(MediaType.MULTIPART_FORM_DATA)
    @Produces({AUDIO_WAV, "application/problem+json"})
    @Operation(summary = "Speak text zero-shot from a recording sent with the request; nothing is stored")
    public Response zeroShot(@RestForm String text, @RestForm String promptText, @RestForm("audio") FileUpload audio,
                             @RestForm Long seed) {
        user.requireUserId();
        String t = checkText(text);
        byte[] wav = SpeakerResource.bytes(audio, "audio",
                "Zero-shot needs the 'audio' part (a 3-30 s WAV) and its 'promptText'; or use a registered speaker.");
        String prompt = promptText == null || promptText.isBlank() ? null : promptText.strip();
        if (prompt == null) {
            throw ApiProblem.unprocessable("prompt-text-missing", "Transcript missing",
                    "Send 'promptText': the words spoken in the recording.");
        }
        float[] pcm = speakers.normalisePrompt(wav);
        long t0 = System.nanoTime();
        try (SpeakerFeatures f = withSlot(() -> engine.extractor().extract(pcm, prompt))) {
            return synthesize(t, f, Source.ZERO_SHOT, System.nanoTime() - t0, seed(seed));
        }
    }

    private Response synthesize(String text, SpeakerFeatures features, Source source, long featureNanos, long seed) {
        Synthesizer.Result r;
        try {
            r = withSlot(() -> engine.synthesizer().synthesize(features, text, new Synthesizer.Options(seed, false)));
        } catch (IllegalArgumentException e) {
            throw ApiProblem.unprocessable("text-unusable", "Text not usable", e.getMessage());
        }
        Synthesizer.Timings t = r.timings();
        long total = featureNanos + t.total();
        Timer.builder("timbre.tts").tag("source", source.header()).register(registry).record(total, TimeUnit.NANOSECONDS);
        stage("features", featureNanos);
        stage("llm", t.llm());
        stage("flow", t.flow());
        stage("vocoder", t.vocoder());
        return Response.ok(WavCodec.encodePcm16(r.pcm(), r.sampleRate()), AUDIO_WAV)
                .header("Server-Timing", String.format(Locale.ROOT,
                        "features;dur=%.3f, llm;dur=%.3f, flow;dur=%.3f, vocoder;dur=%.3f, total;dur=%.3f",
                        ms(featureNanos), ms(t.llm()), ms(t.flow()), ms(t.vocoder()), ms(total)))
                .header("X-Timbre-Speaker-Source", source.header())
                .header("X-Timbre-Segments", r.segments())
                .header("X-Timbre-Seed", seed)
                .build();
    }

    private void stage(String name, long nanos) {
        Timer.builder("timbre.engine.stage").tag("stage", name).register(registry).record(nanos, TimeUnit.NANOSECONDS);
    }

    private <T> T withSlot(java.util.function.Supplier<T> work) {
        boolean acquired;
        try {
            acquired = slots.tryAcquire(queueMillis, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            acquired = false;
        }
        if (!acquired) {
            throw ApiProblem.serviceUnavailable("busy", "Busy", "All synthesis slots stayed busy for "
                    + queueMillis / 1000 + " s; retry shortly.", 5);
        }
        try {
            return work.get();
        } finally {
            slots.release();
        }
    }

    static String checkText(String text) {
        if (text == null || text.isBlank()) {
            throw ApiProblem.unprocessable("text-missing", "Text missing", "Send the 'text' to speak.");
        }
        if (text.length() > MAX_TEXT) {
            throw ApiProblem.unprocessable("text-too-long", "Text too long", "The text has " + text.length()
                    + " characters; the limit is " + MAX_TEXT + ". Split it into several requests.");
        }
        return text;
    }

    static long seed(Long seed) {
        return seed == null ? 0L : seed;
    }

    private static double ms(long nanos) {
        return nanos / 1e6;
    }
}
