package io.timbre.engine;

import io.timbre.text.TextFrontend;
import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.jboss.logging.Logger;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Text + speaker features -> PCM, for every concurrent request at once. The text is split into segments; one
 * scheduler thread runs the LLM as continuous batching: the segments of all requests share decode steps,
 * joining the batch between steps (up to {@code maxRows} rows) and leaving it when done or cancelled, each with
 * its own seeded sampler, so a segment's tokens do not depend on what else runs. A finished segment's flow and
 * vocoder run on a fixed pool of workers, and its audio is handed to the request in order as soon as it exists
 * (streaming). Requests that cannot join yet wait in a bounded queue; a full queue or a wait longer than
 * {@code queueTimeout} is refused with {@link Busy}. With batching off, requests are served one at a time,
 * each to its end, as the reference servers do. The device-memory policy runs once per request, when the
 * request's {@link SynthesisJob} is closed.
 */
public final class Synthesizer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Synthesizer.class);

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
     */
    public record Settings(boolean batching, int maxRows, int maxQueued, Duration queueTimeout, int workers, int flowBacklog) {
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
     * queued requests; flow Euler steps and vocoder calls run; rows failed alone (their batch-mates went on).
     */
    public record Stats(long steps, long rowSteps, int largestBatch, long cancelled, long refused, int rows, int queued,
                        long flowSteps, long vocoderCalls, long isolatedFailures, int flowQueued, int flowRunning) {
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
    private final TextTokenizer tokenizer;
    private final TextFrontend frontend;
    private final SpeechLm lm;
    private final FlowDecoder flow;
    private final Vocoder vocoder;
    private final DeviceMemory memory;
    private final Settings settings;
    private final java.util.concurrent.ThreadPoolExecutor workers;
    private final Thread loop;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition wake = lock.newCondition();
    private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();   // requests with segments not yet in the batch
    private SynthesisJob exclusive;                                // batching off: the request being served
    private volatile boolean running = true;
    private volatile int rows;
    private final AtomicLong steps = new AtomicLong();
    private final AtomicLong rowSteps = new AtomicLong();
    private final AtomicLong cancelledJobs = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();
    private final AtomicLong flowSteps = new AtomicLong();
    private final AtomicLong vocoderCalls = new AtomicLong();
    private final AtomicLong isolatedFailures = new AtomicLong();
    /** Test hook: hears every Euler step a segment's flow completes (job, step). */
    volatile java.util.function.BiConsumer<SynthesisJob, Integer> flowStepHook = (job, step) -> { };
    /** Test hook: sees every row as it is admitted (job, row), e.g. to corrupt one mid-generation. */
    volatile java.util.function.BiConsumer<SynthesisJob, SpeechLm.Row> rowHook = (job, row) -> { };
    private volatile int largest;
    private volatile double recentSeconds = 1;                     // moving average of request time, for Retry-After

    /** A request with segments not yet in the batch: scheduler state, read and written under the lock. */
    private static final class Waiting {
        final SynthesisJob job;
        final long submitted;
        int admitted;   // segments that joined the LLM batch

        Waiting(SynthesisJob job, long submitted) {
            this.job = job;
            this.submitted = submitted;
        }
    }

    /** The segment each LLM row generates; only the scheduler thread reads or writes it. */
    private final java.util.IdentityHashMap<SpeechLm.Row, Segment> segments = new java.util.IdentityHashMap<>();

    public Synthesizer(ModelPack pack, TextTokenizer tokenizer, int workers, DeviceMemory memory) {
        this(pack, tokenizer, Settings.defaults(workers), memory);
    }

    public Synthesizer(ModelPack pack, TextTokenizer tokenizer, Settings settings, DeviceMemory memory) {
        this.pack = pack;
        this.tokenizer = tokenizer;
        PackManifest m = pack.manifest;
        this.frontend = new TextFrontend(tokenizer::count, m.tokenMaxN(), m.tokenMinN(), m.mergeLen());
        this.lm = new SpeechLm(pack);
        this.flow = new FlowDecoder(pack);
        this.vocoder = new Vocoder(pack);
        this.memory = memory;
        this.settings = settings;
        AtomicInteger n = new AtomicInteger();
        int w = Math.max(1, settings.workers());
        this.workers = new java.util.concurrent.ThreadPoolExecutor(w, w, 0, TimeUnit.MILLISECONDS,
                new java.util.concurrent.LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "timbre-segment-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.loop = new Thread(this::run, "timbre-llm");
        this.loop.setDaemon(true);
        this.loop.start();
    }

    public TextFrontend textFrontend() {
        return frontend;
    }

    public DeviceMemory memory() {
        return memory;
    }

    public Settings settings() {
        return settings;
    }

    int sampleRate() {
        return pack.manifest.outputSampleRate();
    }

    public Stats stats() {
        lock.lock();
        try {
            return new Stats(steps.get(), rowSteps.get(), largest, cancelledJobs.get(), refused.get(), rows, waiting.size(),
                    flowSteps.get(), vocoderCalls.get(), isolatedFailures.get(), workers.getQueue().size(), workers.getActiveCount());
        } finally {
            lock.unlock();
        }
    }

    /** Synthesizes and waits for the whole result. */
    public Result synthesize(SpeakerFeatures spk, String text, Options options) {
        try (SynthesisJob job = submit(spk, text, options)) {
            return job.await();
        }
    }

    /** Synthesizes the given segments (already normalised and split) and joins them. */
    public Result synthesize(SpeakerFeatures spk, List<String> segments, Options options) {
        try (SynthesisJob job = submit(spk, segments, options)) {
            return job.await();
        }
    }

    /** Splits the text and queues it; the caller owns the returned job and closes it. */
    public SynthesisJob submit(SpeakerFeatures spk, String text, Options options) {
        List<String> segments = frontend.segments(text);
        if (segments.isEmpty()) {
            throw new IllegalArgumentException("the text has nothing to speak (empty or only punctuation)");
        }
        return submit(spk, segments, options);
    }

    /**
     * Queues the segments; the features must stay open until the returned job is closed.
     *
     * @throws Busy when the queue is full
     */
    public SynthesisJob submit(SpeakerFeatures spk, List<String> segments, Options options) {
        return submit(spk, segments, options, null, true);
    }

    /**
     * As {@link #submit(SpeakerFeatures, List, Options)}, with the LLM's prompt as the pack's {@link PromptPlan}
     * made it (e.g. an instruction in place of the transcript); null: the features' own prompt text and tokens.
     */
    public SynthesisJob submit(SpeakerFeatures spk, List<String> segments, Options options, PromptPlan.LlmPrompt prompt) {
        return submit(spk, segments, options, prompt, true);
    }

    SynthesisJob submit(SpeakerFeatures spk, List<String> segments, Options options, boolean checkIds) {
        return submit(spk, segments, options, null, checkIds);
    }

    /** {@code checkIds} false lets a test give the LLM a row that fails (ids outside its vocabulary). */
    SynthesisJob submit(SpeakerFeatures spk, List<String> segments, Options options, PromptPlan.LlmPrompt prompt, boolean checkIds) {
        long[] promptText;
        long[] promptSpeech;
        if (prompt != null) {
            promptText = prompt.text();
            promptSpeech = prompt.speech();
        } else {
            PromptPlan.LlmPrompt own = ownPrompt(spk);
            promptText = own.text();
            promptSpeech = own.speech();
        }
        if (checkIds) {   // features are validated where they enter; this keeps a bad id off the device all the same
            for (long id : promptSpeech) {
                if (id < 0 || id >= pack.manifest.speechTokenSize()) {
                    throw new IllegalArgumentException("the speaker's speech token " + id + " is outside the pack's vocabulary");
                }
            }
        }
        int maxTokens = pack.manifest.noiseFrames() / 2 - spk.tokenLength();
        List<SpeechLm.Input> inputs = new ArrayList<>();
        for (int i = 0; i < segments.size(); i++) {
            long[] ids = tokenizer.encode(segments.get(i));
            Sampler sampler = options.greedy() ? Sampler.greedy(pack.manifest)
                    : Sampler.seeded(pack.manifest, samplerSeed(options.seed(), i));
            inputs.add(new SpeechLm.Input(promptText, ids, promptSpeech, sampler, maxTokens));
        }
        boolean hops = options.hops() && options.speed() == 1.0 && pack.manifest.streaming() != null;
        SynthesisJob job = new SynthesisJob(this, spk, inputs, options.seed(), options.speed(), hops);
        lock.lock();
        try {
            if (!running) {
                throw new IllegalStateException("the synthesizer is closed");
            }
            if (waiting.size() >= settings.maxQueued()) {
                refused.incrementAndGet();
                throw new Busy(waiting.size() + " requests are already waiting for the engine; retry shortly.", retryAfter());
            }
            waiting.add(new Waiting(job, System.nanoTime()));
            memory.beforeRequest();   // its close() calls afterRequest()
            wake.signal();
        } finally {
            lock.unlock();
        }
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

    private int retryAfter() {
        return (int) Math.max(1, Math.min(60, Math.ceil(recentSeconds)));
    }

    /** Test hook: runs {@code r} while the scheduler cannot admit, so requests submitted inside it join together. */
    void whileHoldingAdmission(Runnable r) {
        lock.lock();
        try {
            r.run();
        } finally {
            lock.unlock();
        }
    }

    void wake() {
        lock.lock();
        try {
            wake.signal();
        } finally {
            lock.unlock();
        }
    }

    /** Called once when every segment of a job is vocoded, dropped or failed. */
    void settled(SynthesisJob job) {
        if (!job.cancelled()) {   // Retry-After follows requests that ran to the end
            recentSeconds = 0.8 * recentSeconds + 0.2 * (job.timings().total() / 1e9);
        }
        if (job.cancelled() && !job.failed()) {   // failed and refused jobs are cancelled too, but not by a client
            cancelledJobs.incrementAndGet();
        }
        lock.lock();
        try {
            if (exclusive == job) {
                exclusive = null;
            }
            wake.signal();
        } finally {
            lock.unlock();
        }
    }

    /** The scheduler: admit waiting segments between steps, run one decode step, hand finished rows on. */
    private void run() {
        SpeechLm.Batch batch = lm.new Batch();
        try {
            while (true) {
                List<SpeechLm.Row> fresh;
                lock.lock();
                try {
                    expire();   // every step, so a queued request that is cancelled or late is let go at once
                    while (running && batch.isEmpty() && !admissible(batch)) {
                        wake.await(100, TimeUnit.MILLISECONDS);
                        expire();
                    }
                    if (!running) {
                        break;
                    }
                    fresh = admit(batch.size());
                } finally {
                    lock.unlock();
                }
                try {
                    joinIsolated(batch, fresh);
                    if (batch.isEmpty()) {
                        continue;
                    }
                    int size = batch.size();
                    batch.step(this::dropIfCancelled, r -> finished(segments.remove(r), r),
                            (r, e) -> failRow(r, e, "the speech model failed while generating this request"));
                    for (SpeechLm.Row r : batch.rows()) {   // hop streams: hand on what the step sampled
                        Segment s = segments.get(r);
                        if (s != null && s.hop() != null) {
                            s.hop().offer(r, false);
                        }
                    }
                    steps.incrementAndGet();
                    rowSteps.addAndGet(size);
                    largest = Math.max(largest, size);
                    rows = batch.size();
                } catch (RuntimeException e) {
                    // a prefill or decode whose rows all fail alone too: the engine itself, every row's state is suspect
                    LOG.errorf(e, "LLM step failed; failing the %d rows in the batch", batch.size());
                    failAll(batch, List.of(), e);
                    batch.close();
                    batch = lm.new Batch();
                    rows = 0;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            failAll(batch, List.of(), new IllegalStateException("the synthesizer was closed"));
            batch.close();
        }
    }

    /** A segment in the LLM batch; {@code hop} is its hop stream when the request streams by hop. */
    private record Segment(SynthesisJob job, int index, HopStream hop) {
    }

    /**
     * The runner's side of one segment streamed by hop: its {@link HopDecoder} and {@link RandomSource}, the tokens
     * sampled so far, and whether a hop is running. The scheduler offers tokens after every step; a hop runs on a
     * worker when the decoder is ready and none of this segment's hops is running (a segment's hops run in order,
     * one at a time, interleaved with other requests' work); a finished hop starts the next itself once the LLM is
     * done (no polling). The decoder is touched only by the thread that set {@code running}, or under this monitor
     * while nothing runs.
     */
    private final class HopStream {
        final SynthesisJob job;
        final int index;
        final RandomSource random;
        final HopDecoder decoder;
        private int[] tokens = new int[0];
        private boolean llmDone;
        private boolean running;
        private boolean closed;

        HopStream(SynthesisJob job, int index) {
            this.job = job;
            this.index = index;
            this.random = RandomSource.forSegment(job.seed, index);
            HopDecoder d;
            try {
                d = new HopDecoder(pack, job.features, random);
            } catch (RuntimeException e) {
                random.close();
                throw e;
            }
            this.decoder = d;
        }

        /** Scheduler thread, after a step: the row's tokens so far ({@code done}: all of them). */
        synchronized void offer(SpeechLm.Row row, boolean done) {
            if (closed) {
                return;
            }
            if (done) {
                llmDone = true;
                tokens = row.tokens();
            }
            if (running) {
                return;   // the running hop starts the next one when the LLM is done, else the next step offers again
            }
            if (!done) {
                if (!decoder.ready(row.count(), false)) {
                    return;
                }
                tokens = row.tokens();
            }
            launch();
        }

        /** Under the monitor: hands the next hop to a worker. */
        private void launch() {
            running = true;
            if (!llmDone) {
                job.hopWhileGenerating();
            }
            try {
                workers.execute(this::runHop);
            } catch (RuntimeException e) {   // the pool is shut down
                running = false;
                job.fail(e);
                closeAndSettle();
            }
        }

        private void runHop() {
            int[] t;
            boolean done;
            synchronized (this) {
                t = tokens;
                done = llmDone;
            }
            try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                if (!job.cancelled()) {
                    float[] pcm = decoder.next(t, done, job::cancelled);
                    flowSteps.addAndGet(pack.manifest.flowSteps());
                    vocoderCalls.incrementAndGet();
                    job.chunk(index, pcm, decoder.lastFlowNanos(), decoder.lastVocoderNanos());
                }
            } catch (SynthesisJob.CancelledException e) {
                // the job is cancelled: settled below
            } catch (RuntimeException | Error e) {
                job.fail(e);
            }
            synchronized (this) {
                running = false;
                if (job.cancelled() || closed) {
                    closeAndSettle();
                } else if (decoder.finished()) {
                    closeAndSettle();
                } else if (llmDone) {
                    launch();
                }
            }
        }

        /** The row left the batch without finishing (cancelled, failed): settles now, or when the running hop ends. */
        synchronized void abandon() {
            llmDone = true;
            if (!running) {
                closeAndSettle();
            } else {
                closed = true;   // the running hop settles
            }
        }

        /** Under the monitor, with no hop running: frees the decoder and the generator, the segment is complete. */
        private void closeAndSettle() {
            closed = true;
            decoder.close();
            random.close();
            if (job.cancelled()) {
                job.settle(index);
            } else {
                job.segmentComplete(index);
            }
        }
    }

    /** The segment no longer generates and will not be vocoded here (cancelled, failed). */
    private static void release(Segment s) {
        if (s.hop() != null) {
            s.hop().abandon();
        } else {
            s.job().settle(s.index());
        }
    }

    /**
     * Prefills the new rows together; if that fails, once more one by one, so a row whose input the LLM refuses
     * fails alone (its request gets its own error) and the others join. A failed prefill leaves the batch as it was.
     */
    private void joinIsolated(SpeechLm.Batch batch, List<SpeechLm.Row> fresh) {
        try {
            batch.join(fresh);
            return;
        } catch (RuntimeException e) {
            if (fresh.size() == 1) {
                failRow(fresh.get(0), e, START_FAILED);
                return;
            }
        }
        for (SpeechLm.Row r : fresh) {
            try {
                batch.join(List.of(r));
            } catch (RuntimeException e) {
                failRow(r, e, START_FAILED);
            }
        }
    }

    private static final String START_FAILED = "the speech model could not start this request (its speaker features or text are not usable)";

    /** One row's LLM prefill or decode failed alone: its request fails with {@code message}, the batch goes on. */
    private void failRow(SpeechLm.Row row, RuntimeException e, String message) {
        Segment s = segments.remove(row);
        isolatedFailures.incrementAndGet();
        LOG.warnf("a segment's LLM step failed; its request fails alone: %s", lastLine(e.getMessage()));
        s.job().fail(new IllegalStateException(message, e));
        release(s);
    }

    /** A row completed its tokens: whole-segment flow and vocoder, or the rest of its hop stream. */
    private void finished(Segment s, SpeechLm.Row row) {
        if (s.hop() == null) {
            vocode(s, row.tokens());
            return;
        }
        s.job().tokensDone(s.index(), row.count());
        s.hop().offer(row, true);
    }

    /** TorchScript puts the error itself on the last line of its traceback. */
    private static String lastLine(String s) {
        if (s == null) {
            return "unknown error";
        }
        String t = s.strip();
        return t.substring(t.lastIndexOf('\n') + 1);
    }

    private boolean dropIfCancelled(SpeechLm.Row row) {
        Segment s = segments.get(row);
        if (s.job().cancelled()) {
            segments.remove(row);
            release(s);   // its cache row is dropped in this step
            return true;
        }
        return false;
    }

    private void failAll(SpeechLm.Batch batch, List<SpeechLm.Row> fresh, Throwable e) {
        List<SpeechLm.Row> all = new ArrayList<>(batch.rows());
        for (SpeechLm.Row r : fresh) {
            if (!all.contains(r)) {
                all.add(r);
            }
        }
        for (SpeechLm.Row r : all) {
            Segment s = segments.remove(r);
            s.job().fail(e);
            release(s);
        }
        if (!running) {
            lock.lock();
            try {
                for (Waiting w : waiting) {
                    w.job.fail(e);
                    for (int i = w.admitted; i < w.job.segments; i++) {
                        w.job.settle(i);
                    }
                }
                waiting.clear();
            } finally {
                lock.unlock();
            }
        }
    }

    /** Whether the flow stage has room: segments waiting for a worker stay under the backlog bound. */
    private boolean flowHasRoom() {
        return workers.getQueue().size() < Math.max(1, settings.flowBacklog());
    }

    /** Under the lock: whether a waiting segment may join now. */
    private boolean admissible(SpeechLm.Batch batch) {
        if (waiting.isEmpty() || !flowHasRoom()) {
            return false;
        }
        if (settings.batching()) {
            return batch.size() < settings.maxRows();
        }
        return exclusive == null || exclusive == waiting.peek().job;
    }

    /** Under the lock: drops cancelled requests from the queue and refuses those that waited too long. */
    private void expire() {
        long now = System.nanoTime();
        for (Iterator<Waiting> it = waiting.iterator(); it.hasNext(); ) {
            Waiting w = it.next();
            SynthesisJob job = w.job;
            boolean late = w.admitted == 0 && now - w.submitted > settings.queueTimeout().toNanos();
            if (job.cancelled() || late) {
                it.remove();
                if (late && !job.cancelled()) {
                    refused.incrementAndGet();
                    job.fail(new Busy("waited " + settings.queueTimeout().toSeconds() + " s for the engine; retry shortly.",
                            retryAfter()));
                }
                for (int i = w.admitted; i < job.segments; i++) {
                    job.settle(i);
                }
            }
        }
    }

    /** Under the lock: the rows that join the batch now, oldest request first. */
    private List<SpeechLm.Row> admit(int size) {
        List<SpeechLm.Row> fresh = new ArrayList<>();
        while (!waiting.isEmpty() && size + fresh.size() < settings.maxRows() && flowHasRoom()) {
            Waiting w = waiting.peek();
            SynthesisJob job = w.job;
            if (!settings.batching()) {
                if (exclusive != null && exclusive != job) {
                    break;
                }
                exclusive = job;
            }
            job.markAdmitted();
            int i = w.admitted++;
            SpeechLm.Row row = lm.row(job.inputs.get(i));
            segments.put(row, new Segment(job, i, job.hops ? new HopStream(job, i) : null));
            rowHook.accept(job, row);
            fresh.add(row);
            if (w.admitted == job.segments) {
                waiting.poll();
            }
        }
        return fresh;
    }

    /** Flow + vocoder of one finished segment on a worker; the job is told when its audio exists. */
    private void vocode(Segment s, int[] tokens) {
        SynthesisJob job = s.job();
        job.tokensDone(s.index(), tokens.length);
        if (tokens.length == 0) {
            job.segmentReady(s.index(), new float[0], 0, 0);
            return;
        }
        long handedOn = System.nanoTime();
        Future<?> f;
        try {
            f = workers.submit(() -> {
                if (job.cancelled()) {
                    job.settle(s.index());
                    return;
                }
                try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode();
                     RandomSource random = RandomSource.forSegment(job.seed, s.index())) {
                    long a = System.nanoTime();
                    job.flowStarted(a - handedOn);
                    Tensor mel = stretch(flow.decode(job.features, tokens, job::cancelled, step -> {
                        flowSteps.incrementAndGet();
                        flowStepHook.accept(job, step);
                    }), job.speed);
                    long b = System.nanoTime();
                    if (job.cancelled()) {   // the client left during the flow: no vocoder
                        job.settle(s.index());
                        return;
                    }
                    vocoderCalls.incrementAndGet();
                    float[] pcm = vocoder.vocode(mel, random);
                    job.segmentReady(s.index(), pcm, b - a, System.nanoTime() - b);
                } catch (SynthesisJob.CancelledException e) {
                    job.settle(s.index());
                } catch (RuntimeException | Error e) {
                    job.fail(e);
                    job.settle(s.index());
                }
            });
        } catch (RuntimeException e) {   // the pool is shut down
            job.fail(e);
            job.settle(s.index());
            return;
        }
        if (!job.addTask(f, s.index()) && f.cancel(false)) {
            job.settle(s.index());
        }
    }

    /** CosyVoice's speed control: linear interpolation of the mel to frames / speed (F.interpolate, mode linear). */
    static Tensor stretch(Tensor mel, double speed) {
        if (speed == 1.0) {
            return mel;
        }
        long frames = Math.max(1, (long) (mel.size(2) / speed));
        return torch.upsample_linear1d(mel, new long[]{frames}, false);
    }

    @Override
    public void close() {
        lock.lock();
        try {
            running = false;
            wake.signalAll();
        } finally {
            lock.unlock();
        }
        try {
            loop.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        workers.shutdown();
        try {
            workers.awaitTermination(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
