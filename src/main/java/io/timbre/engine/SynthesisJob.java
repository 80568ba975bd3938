package io.timbre.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * One request's handle: a passive sink the engine feeds one way. The engine pushes its segments' audio (a whole
 * segment, or hop by hop), their token counts, stage times and failures into it; the caller takes the audio out
 * in order as soon as it exists ({@link #next()}) or all at once ({@link #await()}). The job knows no engine and
 * calls nothing back: {@link #cancel()} only sets a flag that the {@link Scheduler} and the runner read between
 * steps and hops. Whoever submitted it closes it: close cancels, then waits until the engine has released the job
 * (so also the speaker features it borrowed); by then the engine has applied the device-memory policy once for
 * the request.
 */
public final class SynthesisJob implements AutoCloseable {
    /** The job was cancelled (by {@link #cancel()} or close) before it finished. */
    public static final class CancelledException extends RuntimeException {
        public CancelledException() {
            super("the synthesis was cancelled");
        }
    }

    /** What {@link #next(long)} returns when the next segment is not ready within the wait. */
    public static final float[] NOT_YET = new float[0];

    final SpeakerFeatures features;
    final List<SpeechLm.Input> inputs;
    final int segments;
    final long seed;
    final double speed;
    final boolean hops;                                      // streamed by hop (HopDecoder) rather than by segment
    private final int sampleRate;
    private final ArrayDeque<float[]>[] chunks;              // audio not yet handed out, per segment, in order
    private final boolean[] complete;                        // every chunk of the segment is in chunks
    private final int[] tokenCounts;
    private final boolean[] settledSegments;
    private final AtomicInteger hopsWhileGenerating = new AtomicInteger();
    private final long submitted = System.nanoTime();
    private final AtomicLong flowWaitNanos = new AtomicLong();
    private final AtomicLong flowNanos = new AtomicLong();
    private final AtomicLong vocoderNanos = new AtomicLong();
    private long admittedAt;     // first segment joined the LLM batch
    private long tokensAt;       // last segment's tokens complete
    private long doneAt;         // every segment settled
    private int settled;         // segments that are vocoded, dropped or failed
    private int emitted;         // segments handed out by next()
    private boolean released;    // the engine no longer uses the job
    private volatile boolean cancelled;
    private Throwable failure;
    private boolean closed;

    @SuppressWarnings("unchecked")
    SynthesisJob(SpeakerFeatures features, List<SpeechLm.Input> inputs, long seed, double speed, boolean hops, int sampleRate) {
        this.features = features;
        this.inputs = List.copyOf(inputs);
        this.segments = inputs.size();
        this.seed = seed;
        this.speed = speed;
        this.hops = hops;
        this.sampleRate = sampleRate;
        this.chunks = new ArrayDeque[segments];
        for (int i = 0; i < segments; i++) {
            chunks[i] = new ArrayDeque<>();
        }
        this.complete = new boolean[segments];
        this.tokenCounts = new int[segments];
        this.settledSegments = new boolean[segments];
    }

    public int segments() {
        return segments;
    }

    public boolean cancelled() {
        return cancelled;
    }

    /** True when it stopped on an error (its own or the engine's, or refused as late) rather than by cancel(). */
    synchronized boolean failed() {
        return failure != null;
    }

    /**
     * Stops the job: a flag, nothing more. The scheduler drops its rows still generating at the next step and its
     * queued segments when it next looks at the queue; flow and hop work not started is skipped, running work stops
     * between Euler steps.
     */
    public void cancel() {
        synchronized (this) {
            if (cancelled || doneAt != 0) {
                return;
            }
            cancelled = true;
            notifyAll();
        }
    }

    /**
     * The next samples, in order, once vocoded: a whole segment, or with hop streaming one hop of it; null after
     * the last.
     */
    public float[] next() throws InterruptedException {
        return next(0);
    }

    /**
     * Like {@link #next()}, but waits at most {@code millis} (0: no limit) and then answers {@link #NOT_YET}
     * (compare by identity).
     */
    public float[] next(long millis) throws InterruptedException {
        long deadline = System.nanoTime() + millis * 1_000_000L;
        synchronized (this) {
            while (true) {
                if (failure != null) {
                    throw failure instanceof RuntimeException re ? re : new IllegalStateException(failure);
                }
                if (emitted == segments) {
                    return null;
                }
                if (cancelled) {
                    throw new CancelledException();
                }
                ArrayDeque<float[]> q = chunks[emitted];
                if (!q.isEmpty()) {
                    float[] a = q.poll();
                    if (q.isEmpty() && complete[emitted]) {
                        emitted++;
                    }
                    return a;
                }
                if (complete[emitted]) {
                    emitted++;
                    continue;
                }
                if (millis == 0) {
                    wait();
                } else {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        return NOT_YET;
                    }
                    wait(Math.max(1, left / 1_000_000L));
                }
            }
        }
    }

    /** Waits for every segment and joins them. */
    public Synthesizer.Result await() {
        float[] pcm = drain(this::nextOrCancel);
        return new Synthesizer.Result(pcm, sampleRate, segments, speechTokens(), timings());
    }

    private float[] nextOrCancel() {
        try {
            return next();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            cancel();
            throw new CancelledException();
        }
    }

    /** Every segment {@code next} hands out (null after the last), joined in order. */
    public static float[] drain(Supplier<float[]> next) {
        List<float[]> parts = new ArrayList<>();
        int total = 0;
        for (float[] a = next.get(); a != null; a = next.get()) {
            parts.add(a);
            total += a.length;
        }
        float[] pcm = new float[total];
        int at = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, pcm, at, a.length);
            at += a.length;
        }
        return pcm;
    }

    /** Text tokens of all segments (without the prompt's). */
    public int textTokens() {
        int n = 0;
        for (SpeechLm.Input in : inputs) {
            n += in.text().length;
        }
        return n;
    }

    public synchronized int speechTokens() {
        int n = 0;
        for (int c : tokenCounts) {
            n += c;
        }
        return n;
    }

    /** Queue wait, LLM wall time, flow wait, flow and vocoder summed over segments, total; complete once all are out. */
    public synchronized Synthesizer.Timings timings() {
        long admitted = admittedAt == 0 ? submitted : admittedAt;
        long tokens = tokensAt == 0 ? admitted : tokensAt;
        long end = doneAt == 0 ? System.nanoTime() : doneAt;
        return new Synthesizer.Timings(admitted - submitted, tokens - admitted, flowWaitNanos.get(), flowNanos.get(),
                vocoderNanos.get(), end - submitted);
    }

    /** Hops handed on before their segment's LLM row had finished: chunked streaming at work. */
    public int hopsWhileGenerating() {
        return hopsWhileGenerating.get();
    }

    // ------------------------------------------------------------------ fed by the engine, one way

    /** A finished segment reached a flow worker after waiting {@code waited} ns since its tokens were complete. */
    void flowStarted(long waited) {
        flowWaitNanos.addAndGet(waited);
    }

    synchronized void markAdmitted() {
        if (admittedAt == 0) {
            admittedAt = System.nanoTime();
        }
    }

    synchronized void tokensDone(int segment, int count) {
        tokenCounts[segment] = count;
        tokensAt = System.nanoTime();
    }

    /** Samples of a segment: the whole segment, or one hop of a segment streamed by hop (the segment goes on). */
    void chunk(int segment, float[] pcm, long flow, long vocoder) {
        flowNanos.addAndGet(flow);
        vocoderNanos.addAndGet(vocoder);
        synchronized (this) {
            chunks[segment].add(pcm);
            notifyAll();
        }
    }

    /**
     * Every chunk of the segment is in. Readers are woken by the {@link #settle} that follows, so a reader that sees
     * the last segment complete also sees the job done (a close then is not a cancel).
     */
    synchronized void complete(int segment) {
        complete[segment] = true;
    }

    /** A hop was handed to a worker while its segment's LLM row was still generating. */
    void hopWhileGenerating() {
        hopsWhileGenerating.incrementAndGet();
    }

    /** The job failed (its own error, the engine's, or refused as late): the first failure is kept, the job stops. */
    synchronized void fail(Throwable t) {
        if (failure == null) {
            failure = t;
        }
        cancelled = true;
        notifyAll();
    }

    /**
     * Segment {@code segment} no longer uses the engine (vocoded, dropped or failed); repeats are ignored. True
     * exactly once: when the last segment settles (the scheduler then releases the job).
     */
    synchronized boolean settle(int segment) {
        if (settledSegments[segment]) {
            return false;
        }
        settledSegments[segment] = true;
        settled++;
        notifyAll();
        if (settled == segments) {
            doneAt = System.nanoTime();
            return true;
        }
        return false;
    }

    /** The engine is done with the job (every segment settled, its request accounted for). */
    synchronized void release() {
        released = true;
        notifyAll();
    }

    /** Cancels what is unfinished and waits until the engine has released this job. Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        cancel();
        boolean interrupted = false;
        synchronized (this) {
            while (!released) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
