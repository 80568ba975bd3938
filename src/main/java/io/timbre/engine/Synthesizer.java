package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BiConsumer;

/**
 * Speech tokens + speaker features -> PCM, for every concurrent request at once: the engine's facade. Text is
 * normalised, split and tokenized in front of it (the service's frontend); a {@link SpeechRequest} carries token
 * ids only. Inside, three parts with one job each:
 * <ul>
 * <li>the {@link Scheduler} owns all request state: the bounded queue of waiting requests (a full queue or a wait
 * longer than {@code queueTimeout} is refused with {@link Busy}), admission to the LLM batch (up to {@code maxRows}
 * rows; with batching off one request at a time, each to its end, as the reference servers do), cancelled and
 * expired requests, and the chunk stage's queue and its backlog bound;</li>
 * <li>the {@link Runner} runs the LLM as continuous batching on one thread: segments of all requests share decode
 * steps, each with its own seeded sampler, so a segment's tokens do not depend on what else runs;</li>
 * <li>the {@link ChunkWorkers} run flow + vocoder (whole segments, with the speed stretch) or hops on a fixed pool.</li>
 * </ul>
 * A request's {@link SynthesisJob} is a passive handle: the engine feeds it audio in order as soon as it exists
 * (streaming), and reads its cancel flag; the job never calls the engine. The device-memory policy runs once per
 * request, when the engine releases its job.
 */
public final class Synthesizer implements AutoCloseable {

    /**
     * @param speed CosyVoice's speed: the mel is stretched in time by 1/speed before the vocoder (pitch kept)
     * @param hops  stream by hop as CosyVoice 2 does (tokens go to a per-segment {@link HopDecoder} as they are
     *              sampled); needs a pack with a streaming section and speed 1, else segments stream whole
     */
    public record Options(long seed, boolean greedy, double speed, boolean hops) {
        public Options(long seed, boolean greedy) {
            this(seed, greedy, 1.0, false);
        }

        public Options(long seed, boolean greedy, double speed) {
            this(seed, greedy, speed, false);
        }
    }

    /**
     * @param batching     share LLM steps across requests; false: one request at a time
     * @param maxRows      most sequences in one decode step
     * @param maxQueued    most requests waiting to start; more are refused
     * @param queueTimeout longest wait to start before a request is refused
     * @param workers      threads for flow + vocoder
     * @param flowBacklog  most finished segments waiting for a flow worker; while it is reached no new segment
     *                     joins the LLM batch, so the wait moves to the bounded queue (and 503 when that is full)
     * @param flowBatch    most flow runs (hops or segments of any requests) whose estimator steps share one call
     *                     ({@link FlowBatcher}); 1: each runs alone, and a request's audio is byte-identical whatever
     *                     runs beside it. Workers are raised to at least this many.
     */
    public record Settings(boolean batching, int maxRows, int maxQueued, Duration queueTimeout, int workers, int flowBacklog,
                           int flowBatch) {
        public Settings(boolean batching, int maxRows, int maxQueued, Duration queueTimeout, int workers, int flowBacklog) {
            this(batching, maxRows, maxQueued, queueTimeout, workers, flowBacklog, 1);
        }

        public Settings(boolean batching, int maxRows, int maxQueued, Duration queueTimeout, int workers) {
            this(batching, maxRows, maxQueued, queueTimeout, workers, 4 * Math.max(1, workers));
        }

        public static Settings defaults(int workers) {
            return new Settings(true, 16, 64, Duration.ofSeconds(60), workers);
        }
    }

    /**
     * Stage times in nanoseconds: the wait to join the LLM batch; the LLM's wall time from the first row's
     * admission to the last row's tokens; the waits of finished segments for a flow worker, the flow and the
     * vocoder, each summed over segments; and the whole request.
     */
    public record Timings(long queue, long llm, long flowWait, long flow, long vocoder, long total) {
    }

    public record Result(float[] pcm, int sampleRate, int segments, int speechTokens, Timings timings) {
        public double seconds() {
            return pcm.length / (double) sampleRate;
        }
    }

    /**
     * Decode steps run, rows summed over them, the largest batch, cancelled and refused requests, live rows,
     * queued requests; flow Euler steps and vocoder calls run; rows failed alone (their batch-mates went on);
     * estimator calls (flow steps over estimator calls: the mean stack of {@link FlowBatcher}).
     */
    public record Stats(long steps, long rowSteps, int largestBatch, long cancelled, long refused, int rows, int queued,
                        long flowSteps, long vocoderCalls, long isolatedFailures, int flowQueued, int flowRunning,
                        long estimatorCalls) {
    }

    /** The queue is full, or a request waited too long to start; retry after {@code retryAfterSeconds}. */
    public static final class Busy extends RuntimeException {
        public final int retryAfterSeconds;

        Busy(String message, int retryAfterSeconds) {
            super(message);
            this.retryAfterSeconds = retryAfterSeconds;
        }
    }

    private final ModelPack pack;
    private final Settings settings;
    private final DeviceMemory memory;
    private final Scheduler scheduler;
    private final ChunkWorkers chunks;
    private final Runner runner;
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Test hook: hears every Euler step a whole segment's flow completes (job, step). */
    volatile BiConsumer<SynthesisJob, Integer> flowStepHook = (job, step) -> { };
    /** Test hook: sees every row as it is admitted (job, row), e.g. to corrupt one mid-generation. */
    volatile BiConsumer<SynthesisJob, SpeechLm.Row> rowHook = (job, row) -> { };

    public Synthesizer(ModelPack pack, int workers, DeviceMemory memory) {
        this(pack, Settings.defaults(workers), memory);
    }

    public Synthesizer(ModelPack pack, Settings settings, DeviceMemory memory) {
        this.pack = pack;
        this.settings = settings;
        this.memory = memory;
        LinkedBlockingQueue<Runnable> chunkQueue = new LinkedBlockingQueue<>();
        this.scheduler = new Scheduler(settings, memory, chunkQueue);
        this.chunks = new ChunkWorkers(pack, settings.workers(), settings.flowBatch(), chunkQueue, scheduler, (job, step) -> flowStepHook.accept(job, step));
        this.runner = new Runner(pack, scheduler, chunks, (job, row) -> rowHook.accept(job, row));
        this.runner.start();
    }

    public Settings settings() {
        return settings;
    }

    DeviceMemory memory() {
        return memory;
    }

    public Stats stats() {
        return new Stats(runner.steps(), runner.rowSteps(), runner.largest(), scheduler.cancelled(), scheduler.refused(),
                runner.rows(), scheduler.queued(), chunks.flowSteps(), chunks.vocoderCalls(), runner.isolatedFailures(),
                chunks.queued(), chunks.running(), chunks.batcher().calls());
    }

    /** Synthesizes and waits for the whole result. */
    public Result synthesize(SpeechRequest request) {
        try (SynthesisJob job = submit(request)) {
            return job.await();
        }
    }

    /**
     * Queues the request; the caller owns the returned job and closes it. The features must stay open until then.
     *
     * @throws Busy when the queue is full
     */
    public SynthesisJob submit(SpeechRequest request) {
        return submit(request, true);
    }

    /** {@code checkIds} false lets a test give the LLM a row that fails (ids outside its vocabulary). */
    SynthesisJob submit(SpeechRequest request, boolean checkIds) {
        SpeakerFeatures spk = request.features();
        Options options = request.options();
        PromptPlan.LlmPrompt prompt = request.prompt() != null ? request.prompt() : ownPrompt(spk);
        if (checkIds) {   // features are validated where they enter; this keeps a bad id off the device all the same
            for (long id : prompt.speech()) {
                if (id < 0 || id >= pack.manifest.speechTokenSize()) {
                    throw new IllegalArgumentException("the speaker's speech token " + id + " is outside the pack's vocabulary");
                }
            }
        }
        int maxTokens = pack.manifest.noiseFrames() / 2 - spk.tokenLength();
        List<SpeechLm.Input> inputs = new ArrayList<>();
        for (int i = 0; i < request.segments().size(); i++) {
            Sampler sampler = options.greedy() ? Sampler.greedy(pack.manifest)
                    : Sampler.seeded(pack.manifest, samplerSeed(options.seed(), i));
            inputs.add(new SpeechLm.Input(prompt.text(), request.segments().get(i), prompt.speech(), sampler, maxTokens));
        }
        boolean hops = options.hops() && options.speed() == 1.0 && pack.manifest.streaming() != null;
        SynthesisJob job = new SynthesisJob(spk, inputs, options.seed(), options.speed(), hops, pack.manifest.outputSampleRate());
        scheduler.enqueue(job);
        return job;
    }

    /** The features' own prompt: their prompt_text and llm_prompt_speech_token, as ids. */
    public static PromptPlan.LlmPrompt ownPrompt(SpeakerFeatures spk) {
        try (PointerScope scope = new PointerScope()) {   // the copies' temporary handles are freed here, not by the GC
            return new PromptPlan.LlmPrompt(Tensors.toLongs(spk.promptText()), Tensors.toLongs(spk.speechTokens()));
        }
    }

    /**
     * The sampler's seed of a segment, derived from the request seed alone (independent of scheduling); unchanged
     * since the first release, so sampled answers keep their tokens. The vocoder's draws come from
     * {@link RandomSource#forSegment}.
     */
    static long samplerSeed(long seed, int segment) {
        return seed * 0x9E3779B97F4A7C15L + segment * 0xBF58476D1CE4E5B9L + 1;
    }

    /** Test hook: runs {@code r} while the scheduler cannot admit, so requests submitted inside it join together. */
    void whileHoldingAdmission(Runnable r) {
        scheduler.whileHoldingAdmission(r);
    }

    /** Stops admitting, fails what is still queued or generating, lets the chunk workers finish; idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        scheduler.stop();
        runner.join();
        chunks.shutdown();
    }
}
