package io.timbre.synthesis;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.timbre.api.ApiProblem;
import io.timbre.config.TimbreConfig;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.Synthesizer;
import io.timbre.speaker.Speaker;
import io.timbre.speaker.SpeakerService;
import io.timbre.speaker.SpeakerService.Source;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.ws.rs.core.Response;

import java.util.Locale;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The synthesis path shared by POST /v1/tts and POST /v1/audio/speech: a bounded number of concurrent engine
 * calls (a fair semaphore; a wait longer than timbre.engine.queue-timeout answers 503 with Retry-After),
 * feature resolution, synthesis, metrics and the diagnostic response headers.
 */
@ApplicationScoped
public class SynthesisService {
    private final Engine engine;
    private final SpeakerService speakers;
    private final MeterRegistry registry;
    private final Semaphore slots;
    private final long queueMillis;

    SynthesisService(Engine engine, SpeakerService speakers, MeterRegistry registry, TimbreConfig config) {
        this.engine = engine;
        this.speakers = speakers;
        this.registry = registry;
        this.slots = new Semaphore(Math.max(1, config.engine().concurrentRequests()), true);
        this.queueMillis = config.engine().queueTimeout().toMillis();
    }

    /** A finished synthesis: mono samples at {@code sampleRate}, with where the features came from and timings. */
    public record Speech(float[] pcm, int sampleRate, int segments, long seed, Source source, long featureNanos,
                         Synthesizer.Timings timings) {
        public long totalNanos() {
            return featureNanos + timings.total();
        }

        /** Server-Timing, X-Timbre-Speaker-Source, X-Timbre-Segments and X-Timbre-Seed. */
        public Response.ResponseBuilder headers(Response.ResponseBuilder b) {
            return b.header("Server-Timing", String.format(Locale.ROOT,
                            "features;dur=%.3f, llm;dur=%.3f, flow;dur=%.3f, vocoder;dur=%.3f, total;dur=%.3f",
                            ms(featureNanos), ms(timings.llm()), ms(timings.flow()), ms(timings.vocoder()), ms(totalNanos())))
                    .header("X-Timbre-Speaker-Source", source.header())
                    .header("X-Timbre-Segments", segments)
                    .header("X-Timbre-Seed", seed);
        }
    }

    /** Speaks with a stored speaker's features (memory, file or re-extracted). */
    public Speech speak(Speaker speaker, String text, long seed) {
        try (SpeakerService.Resolved features = withSlot(() -> speakers.features(speaker))) {
            return synthesize(text, features.features(), features.source(), features.nanos(), seed);
        }
    }

    /** Speaks zero-shot: features extracted from {@code promptPcm} for this request only. */
    public Speech speakZeroShot(float[] promptPcm, String promptText, String text, long seed) {
        long t0 = System.nanoTime();
        try (SpeakerFeatures f = withSlot(() -> engine.extractor().extract(promptPcm, promptText))) {
            return synthesize(text, f, Source.ZERO_SHOT, System.nanoTime() - t0, seed);
        }
    }

    private Speech synthesize(String text, SpeakerFeatures features, Source source, long featureNanos, long seed) {
        Synthesizer.Result r;
        try {
            r = withSlot(() -> engine.synthesizer().synthesize(features, text, new Synthesizer.Options(seed, false)));
        } catch (IllegalArgumentException e) {
            throw ApiProblem.unprocessable("text-unusable", "Text not usable", e.getMessage());
        }
        Synthesizer.Timings t = r.timings();
        Speech speech = new Speech(r.pcm(), r.sampleRate(), r.segments(), seed, source, featureNanos, t);
        Timer.builder("timbre.tts").tag("source", source.header()).register(registry)
                .record(speech.totalNanos(), TimeUnit.NANOSECONDS);
        stage("features", featureNanos);
        stage("llm", t.llm());
        stage("flow", t.flow());
        stage("vocoder", t.vocoder());
        return speech;
    }

    private void stage(String name, long nanos) {
        Timer.builder("timbre.engine.stage").tag("stage", name).register(registry).record(nanos, TimeUnit.NANOSECONDS);
    }

    /** Runs engine work in one of the synthesis slots. */
    public <T> T withSlot(Supplier<T> work) {
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

    private static double ms(long nanos) {
        return nanos / 1e6;
    }
}
