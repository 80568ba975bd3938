package io.timbre.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * One request's synthesis inside the {@link Synthesizer}'s scheduler: its segments' LLM rows, their flow +
 * vocoder work, and the audio they produce, handed out in order as soon as each is ready ({@link #next()}) or
 * all at once ({@link #await()}). Whoever submitted it closes it: close cancels what has not run, waits until no
 * part of the engine still uses the job (and so the speaker features it borrowed), and applies the
 * device-memory policy once for the request.
 */
public final class SynthesisJob implements AutoCloseable {
    /** The job was cancelled (by {@link #cancel()} or close) before it finished. */
    public static final class CancelledException extends RuntimeException {
        public CancelledException() {
            super("the synthesis was cancelled");
        }
    }

    final SpeakerFeatures features;
    final List<SpeechLm.Input> inputs;
    final int segments;
    final long seed;
    final double speed;
    private final Synthesizer owner;
    private final java.util.ArrayDeque<float[]>[] chunks;   // audio not yet handed out, per segment, in order
    private final boolean[] complete;                        // every chunk of the segment is in chunks
    final boolean hops;                                      // streamed by hop (HopDecoder) rather than by segment
    private final java.util.concurrent.atomic.AtomicInteger hopsWhileGenerating = new java.util.concurrent.atomic.AtomicInteger();
    private final int[] tokenCounts;
    private final List<Task> tasks = new ArrayList<>();
    private final boolean[] settledSegments;
    private final long submitted = System.nanoTime();
    private final AtomicLong flowWaitNanos = new AtomicLong();
    private final AtomicLong flowNanos = new AtomicLong();
    private final AtomicLong vocoderNanos = new AtomicLong();
    private long admittedAt;     // first segment joined the LLM batch
    private long tokensAt;       // last segment's tokens complete
    private long doneAt;
    private int settled;         // segments that are vocoded, dropped or failed
    private int emitted;         // segments handed out by next()
    private volatile boolean cancelled;
    private Throwable failure;
    private boolean closed;

    @SuppressWarnings("unchecked")
    SynthesisJob(Synthesizer owner, SpeakerFeatures features, List<SpeechLm.Input> inputs, long seed, double speed, boolean hops) {
        this.owner = owner;
        this.seed = seed;
        this.hops = hops;
        this.speed = speed;
        this.features = features;
        this.inputs = inputs;
        this.segments = inputs.size();
        this.chunks = new java.util.ArrayDeque[segments];
        for (int i = 0; i < segments; i++) {
            chunks[i] = new java.util.ArrayDeque<>();
        }
        this.complete = new boolean[segments];
        this.tokenCounts = new int[segments];
        this.settledSegments = new boolean[segments];
    }

    private record Task(Future<?> future, int segment) {
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

    /** Stops the job: rows still generating leave the batch at the next step, work not started is skipped. */
    public void cancel() {
        List<Task> pending;
        synchronized (this) {
            if (cancelled || doneAt != 0) {
                return;
            }
            cancelled = true;
            pending = new ArrayList<>(tasks);
            notifyAll();
        }
        for (Task t : pending) {
            if (t.future().cancel(false)) {
                settle(t.segment());   // never started: it will not settle itself
            }
        }
        owner.wake();
    }

    /** What {@link #next(long)} returns when the next segment is not ready within the wait. */
    public static final float[] NOT_YET = new float[0];

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
                java.util.ArrayDeque<float[]> q = chunks[emitted];
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
        return new Synthesizer.Result(pcm, owner.sampleRate(), segments, speechTokens(), timings());
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

    /** Registers flow work; false (and nothing registered) when the job is already cancelled. */
    synchronized boolean addTask(Future<?> f, int segment) {
        if (cancelled) {
            return false;
        }
        tasks.add(new Task(f, segment));
        return true;
    }

    void segmentReady(int segment, float[] pcm, long flow, long vocoder) {
        chunk(segment, pcm, flow, vocoder);
        segmentComplete(segment);
    }

    /** One hop's samples of a segment streamed by hop (the segment goes on). */
    void chunk(int segment, float[] pcm, long flow, long vocoder) {
        flowNanos.addAndGet(flow);
        vocoderNanos.addAndGet(vocoder);
        synchronized (this) {
            chunks[segment].add(pcm);
            notifyAll();
        }
    }

    /** Every chunk of the segment is out and it no longer uses the engine. */
    void segmentComplete(int segment) {
        synchronized (this) {
            complete[segment] = true;
        }
        settle(segment);
    }

    /** A hop was handed to a worker while its segment's LLM row was still generating. */
    void hopWhileGenerating() {
        hopsWhileGenerating.incrementAndGet();
    }

    /** Hops handed on before their segment's LLM row had finished: chunked streaming at work. */
    public int hopsWhileGenerating() {
        return hopsWhileGenerating.get();
    }

    void fail(Throwable t) {
        synchronized (this) {
            if (failure == null) {
                failure = t;
            }
        }
        cancel();
    }

    /** Segment {@code segment} no longer uses the engine (vocoded, dropped or failed); repeats are ignored. */
    void settle(int segment) {
        boolean all;
        synchronized (this) {
            if (settledSegments[segment]) {
                return;
            }
            settledSegments[segment] = true;
            settled++;
            all = settled == segments;
            if (all) {
                doneAt = System.nanoTime();
            }
            notifyAll();
        }
        if (all) {
            owner.settled(this);
        }
    }

    synchronized boolean isSettled() {
        return settled == segments;
    }

    /** Cancels what is unfinished, waits until the engine no longer uses this job, applies the memory policy. */
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
            while (settled < segments) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        owner.memory().afterRequest();   // once per request, never per segment
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
