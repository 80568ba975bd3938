package io.timbre.synthesis;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.timbre.api.ApiProblem;
import io.timbre.config.TimbreConfig;
import io.timbre.engine.PromptPlan;
import io.timbre.engine.SpeakerExtraction;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.SpeechRequest;
import io.timbre.engine.SpeechSynthesis;
import io.timbre.engine.SynthesisJob;
import io.timbre.engine.Synthesizer;
import io.timbre.speaker.Speaker;
import io.timbre.speaker.SpeakerService;
import io.timbre.speaker.SpeakerService.Source;
import io.timbre.text.TextFrontend;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.ws.rs.core.Response;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The synthesis path shared by POST /v1/tts and POST /v1/audio/speech: feature resolution (extractions bounded
 * by a fair semaphore), then the engine's scheduler, which batches all requests' segments and refuses work with
 * 503 + Retry-After when its queue is full; metrics and the diagnostic response headers.
 */
@ApplicationScoped
public class SynthesisService {
    private final SpeechSynthesis engine;
    private final SpeakerExtraction extraction;
    private final SpeakerService speakers;
    private final MeterRegistry registry;
    private final Semaphore slots;
    private final long queueMillis;

    SynthesisService(SpeechSynthesis engine, SpeakerExtraction extraction, SpeakerService speakers, MeterRegistry registry,
                     TimbreConfig config) {
        this.engine = engine;
        this.extraction = extraction;
        this.speakers = speakers;
        this.registry = registry;
        this.slots = new Semaphore(Math.max(1, config.engine().concurrentExtractions()), true);
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
            b.header("Server-Timing", String.format(Locale.ROOT,
                            "features;dur=%.3f, queue;dur=%.3f, llm;dur=%.3f, flow-wait;dur=%.3f, flow;dur=%.3f, vocoder;dur=%.3f, total;dur=%.3f",
                            ms(featureNanos), ms(timings.queue()), ms(timings.llm()), ms(timings.flowWait()), ms(timings.flow()),
                            ms(timings.vocoder()), ms(totalNanos())));
            return describe(b, source, segments, seed);
        }
    }

    /**
     * A synthesis under way: its segments' audio comes out in order ({@link #next()}) as each is vocoded. The
     * caller closes it, which cancels what is unfinished and gives back the speaker features.
     */
    public final class Synthesis implements AutoCloseable {
        private final SynthesisJob job;
        private final Runnable release;   // gives the speaker features back
        private final Source source;
        private final long featureNanos;
        private final long seed;
        private final int sampleRate;
        private final long accepted;
        private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
        private final java.util.concurrent.atomic.AtomicBoolean audioWritten = new java.util.concurrent.atomic.AtomicBoolean();
        private volatile String endpoint = "other";
        private volatile String stream = "none";
        private volatile java.util.function.BooleanSupplier gone;

        private Synthesis(SynthesisJob job, Runnable release, Source source, long accepted, long featureNanos, long seed) {
            this.job = job;
            this.release = release;
            this.source = source;
            this.accepted = accepted;
            this.featureNanos = featureNanos;
            this.seed = seed;
            this.sampleRate = engine.sampleRate();
        }

        /**
         * The tags of this request's time to first audio ({@link LatencyMetrics#FIRST_AUDIO}): the endpoint
         * ({@code tts}, {@code speech}) and how its audio goes out ({@code none}: the whole clip; else the
         * streaming unit, {@code segment} or {@code hop}).
         */
        public Synthesis latencyTags(String endpoint, String stream) {
            this.endpoint = endpoint;
            this.stream = stream;
            return this;
        }

        /** Called when the first audio byte goes out: records the time to first audio, once. */
        public void firstAudioWritten() {
            if (audioWritten.compareAndSet(false, true)) {
                LatencyMetrics.firstAudio(registry, endpoint, stream, System.nanoTime() - accepted);
            }
        }

        public int sampleRate() {
            return sampleRate;
        }

        public int segments() {
            return job.segments();
        }

        public int inputTokens() {
            return job.textTokens();
        }

        public int outputTokens() {
            return job.speechTokens();
        }

        /** Stops the work; safe from any thread (e.g. when the client disconnects). */
        public void cancel() {
            job.cancel();
        }

        /**
         * Checked while waiting for audio (every 50 ms): when it turns true, e.g. because the client's connection
         * closed, the synthesis is cancelled.
         */
        public void cancelWhen(java.util.function.BooleanSupplier gone) {
            this.gone = gone;
        }

        /** The next samples (a segment, or a hop of one when streaming by hop), null after the last. */
        public float[] next() {
            try {
                float[] a;
                while ((a = job.next(gone == null ? 0 : 50)) == SynthesisJob.NOT_YET) {
                    if (gone.getAsBoolean()) {
                        job.cancel();
                    }
                }
                return a;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                job.cancel();
                throw new SynthesisJob.CancelledException();
            } catch (Synthesizer.Busy e) {
                throw busy(e);
            }
        }

        /** Headers known before the audio: the source, segments, seed, and the feature and queue times so far. */
        public Response.ResponseBuilder headers(Response.ResponseBuilder b) {
            b.header("Server-Timing", String.format(Locale.ROOT, "features;dur=%.3f", ms(featureNanos)));
            return describe(b, source, job.segments(), seed);
        }

        /** Waits for every segment and joins them. */
        public Speech all() {
            float[] pcm = SynthesisJob.drain(this::next);
            return new Speech(pcm, sampleRate, job.segments(), seed, source, featureNanos, job.timings());
        }

        @Override
        public void close() {
            if (!closed.compareAndSet(false, true)) {
                return;
            }
            try {
                job.close();
            } finally {
                release.run();
            }
            if (!job.cancelled()) {
                Synthesizer.Timings t = job.timings();
                Timer.builder("timbre.tts").tag("source", source.header()).register(registry)
                        .record(featureNanos + t.total(), TimeUnit.NANOSECONDS);
                LatencyMetrics.stages(registry, featureNanos, t);
            }
        }
    }

    /** X-Timbre-Speaker-Source, X-Timbre-Segments and X-Timbre-Seed: the same on whole and streamed answers. */
    private static Response.ResponseBuilder describe(Response.ResponseBuilder b, Source source, int segments, long seed) {
        return b.header("X-Timbre-Speaker-Source", source.header())
                .header("X-Timbre-Segments", segments)
                .header("X-Timbre-Seed", seed);
    }

    /**
     * What synthesis will speak for {@code text}: the segments of the engine's text frontend (normalised unless
     * {@code normalize} is false). Text with nothing speakable in it (blank, invisible characters, punctuation)
     * is refused with 422.
     */
    public TextFrontend.Reading read(String text, TextFrontend.Language language, boolean normalize) {
        TextFrontend.Reading r = engine.textFrontend().read(text, language, normalize);
        if (r.segments().isEmpty()) {
            throw ApiProblem.unprocessable("text-unspeakable", "Nothing to speak", "The text has nothing that can be "
                    + "spoken: it is blank, invisible characters (zero-width, control) or punctuation only. Send words or numbers.");
        }
        return r;
    }

    /**
     * Starts speaking the segments (from {@link #read}) with a stored speaker's features (memory, file or
     * re-extracted), spoken as {@code instruction} says (null: no instruction); {@code hops}: audio comes out by hop
     * (CosyVoice 2's chunks), else by segment.
     */
    public Synthesis start(Speaker speaker, List<String> segments, long seed, double speed, PromptPlan.Instruction instruction,
                           boolean hops) {
        long accepted = System.nanoTime();
        SpeakerService.Resolved f = withSlot(() -> speakers.features(speaker));
        return start(segments, f.features(), f::close, f.source(), accepted, f.nanos(), seed, speed, instruction, hops);
    }

    /**
     * Starts speaking the segments zero-shot: features extracted from the prompt for this request only, spoken as
     * {@code instruction} says (null: none); {@code hops}: audio comes out by hop. The transcript is prepared as the
     * pack's family does it ({@link PromptPlan#speakerPromptText}): CosyVoice 2 normalizes it as inference_zero_shot
     * does (text_normalize(prompt_text, split=False)); CosyVoice 3 puts its system prompt first. The segments are
     * tokenized here, in front of the engine, which takes token ids only.
     */
    public Synthesis startZeroShot(float[] promptPcm, int promptRate, String promptText, List<String> segments, long seed, double speed,
                                   PromptPlan.Instruction instruction, boolean hops) {
        long t0 = System.nanoTime();
        PromptPlan plan = engine.promptPlan();
        String transcript = plan.normalizesTranscript() ? engine.textFrontend().normalize(promptText) : promptText;
        SpeakerFeatures f = withSlot(() -> extraction.extract(promptPcm, promptRate, plan.speakerPromptText(transcript)));
        return start(segments, f, f::close, Source.ZERO_SHOT, t0, System.nanoTime() - t0, seed, speed, instruction, hops);
    }

    /** The instructions the loaded pack supports (GET /v1/instructions). */
    public PromptPlan promptPlan() {
        return engine.promptPlan();
    }

    /**
     * The pack's instruction a request names in {@code field} (by id, by its text, or by the whole prompt); null when
     * {@code requested} is null or blank. Anything else is refused with 422 listing the supported ones.
     */
    public PromptPlan.Instruction instruction(String field, String requested) {
        if (requested == null || requested.isBlank()) {
            return null;
        }
        PromptPlan plan = engine.promptPlan();
        return plan.find(requested).orElseThrow(() -> {
            String pack = engine.packKey() + " (" + plan.family().id + ")";
            String supported = plan.instructions().isEmpty() ? "This pack, " + pack + ", declares no instructions."
                    : "This pack, " + pack + ", supports: " + String.join(", ", plan.instructions().stream()
                    .map(i -> i.id() + " (" + i.text() + ")").toList()) + ". Send the id or the text.";
            String shown = requested.strip();
            return ApiProblem.unprocessable("instruct-unsupported", "Instruction not supported", "'" + field + "' is '"
                    + (shown.length() > 80 ? shown.substring(0, 80) + "..." : shown) + "', which is not one of this model's "
                    + "instructions. " + supported + " The list is at GET /v1/instructions.");
        });
    }

    private Synthesis start(List<String> segments, SpeakerFeatures features, Runnable release, Source source, long accepted,
                            long featureNanos, long seed, double speed, PromptPlan.Instruction instruction,
                            boolean hops) {
        try {
            PromptPlan.LlmPrompt own = Synthesizer.ownPrompt(features);
            PromptPlan.LlmPrompt prompt = engine.promptPlan().llmPrompt(own.text(), own.speech(), instruction);
            List<long[]> ids = segments.stream().map(engine::tokenize).toList();   // the frontend's last step: the engine takes ids
            SynthesisJob job = engine.submit(new SpeechRequest(features, ids, prompt, new Synthesizer.Options(seed, false, speed, hops)));
            return new Synthesis(job, release, source, accepted, featureNanos, seed);
        } catch (RuntimeException e) {
            try {
                release.run();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            if (e instanceof IllegalArgumentException) {
                throw ApiProblem.unprocessable("text-unusable", "Text not usable", e.getMessage());
            }
            if (e instanceof Synthesizer.Busy b) {
                throw busy(b);
            }
            throw e;
        }
    }

    private static ApiProblem busy(Synthesizer.Busy e) {
        return ApiProblem.serviceUnavailable("busy", "Busy", e.getMessage(), e.retryAfterSeconds);
    }

    /** Runs a feature extraction in one of the extraction slots; a wait past the queue timeout answers 503. */
    public <T> T withSlot(Supplier<T> work) {
        boolean acquired;
        try {
            acquired = slots.tryAcquire(queueMillis, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            acquired = false;
        }
        if (!acquired) {
            throw ApiProblem.serviceUnavailable("busy", "Busy", "All feature-extraction slots stayed busy for "
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
