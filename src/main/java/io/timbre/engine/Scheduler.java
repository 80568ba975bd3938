package io.timbre.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * All request state of the engine: the waiting requests (a bounded queue, oldest first), which of their segments
 * are admitted to the LLM batch, the request being served alone when batching is off, cancelled and expired
 * requests, and the admission gate of the flow stage (its backlog bound). Jobs are passive: the scheduler reads
 * their cancel flag, it is never called by them. Every segment's end goes through {@link #settle}, which releases
 * a job once all of its segments have settled (its memory policy applied, its request counted). State is read and
 * written under one lock; the {@link Runner}'s thread waits here for work.
 */
final class Scheduler {
    /** One segment that may join the LLM batch now. */
    record Admission(SynthesisJob job, int index) {
    }

    /** A whole segment's flow + vocoder work in the chunk queue; dropped there when its job is cancelled. */
    record SegmentWork(SynthesisJob job, int index, Runnable work) implements Runnable {
        @Override
        public void run() {
            work.run();
        }
    }

    /** A request with segments not yet in the batch. */
    private static final class Waiting {
        final SynthesisJob job;
        final long submitted;
        int admitted;   // segments that joined the LLM batch

        Waiting(SynthesisJob job, long submitted) {
            this.job = job;
            this.submitted = submitted;
        }
    }

    private final Synthesizer.Settings settings;
    private final DeviceMemory memory;
    private final BlockingQueue<Runnable> chunks;   // the chunk stage's queue: work waiting for a worker
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition wake = lock.newCondition();
    private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();
    private SynthesisJob exclusive;          // batching off: the request being served
    private boolean running = true;
    private final AtomicLong cancelled = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();
    private volatile double recentSeconds = 1;   // moving average of request time, for Retry-After

    Scheduler(Synthesizer.Settings settings, DeviceMemory memory, BlockingQueue<Runnable> chunks) {
        this.settings = settings;
        this.memory = memory;
        this.chunks = chunks;
    }

    /** Queues a request; the device-memory policy's request begins here and ends when the job is released. */
    void enqueue(SynthesisJob job) {
        lock.lock();
        try {
            if (!running) {
                throw new IllegalStateException("the synthesizer is closed");
            }
            if (waiting.size() >= settings.maxQueued()) {
                refused.incrementAndGet();
                throw new Synthesizer.Busy(waiting.size() + " requests are already waiting for the engine; retry shortly.", retryAfter());
            }
            waiting.add(new Waiting(job, System.nanoTime()));
            memory.beforeRequest();
            wake.signal();
        } finally {
            lock.unlock();
        }
    }

    /**
     * The runner's wait for work, called before every step: lets go of cancelled and late requests and of cancelled
     * jobs' queued chunk work, and returns the segments that join the batch now, oldest request first. With an
     * empty batch and nothing admissible it first waits until woken or 100 ms (a cancel is a flag, so it is looked
     * at here at least that often) and may return nothing. Null once stopped.
     */
    List<Admission> admissions(int batchSize) throws InterruptedException {
        sweep();
        lock.lock();
        try {
            expire();   // every step, so a queued request that is cancelled or late is let go at once
            if (running && batchSize == 0 && !admissible(batchSize)) {
                wake.await(100, TimeUnit.MILLISECONDS);
                expire();
            }
            if (!running) {
                return null;
            }
            return admit(batchSize);
        } finally {
            lock.unlock();
        }
    }

    /** Outside the lock: takes cancelled jobs' whole-segment work out of the chunk queue; those segments settle. */
    private void sweep() {
        List<SegmentWork> dropped = new ArrayList<>();
        chunks.removeIf(r -> r instanceof SegmentWork w && w.job().cancelled() && dropped.add(w));
        for (SegmentWork w : dropped) {
            settle(w.job(), w.index());
        }
    }

    /** Segment {@code index} of {@code job} no longer uses the engine; the job is released after its last one. */
    void settle(SynthesisJob job, int index) {
        if (!job.settle(index)) {
            return;
        }
        if (!job.cancelled()) {   // Retry-After follows requests that ran to the end
            recentSeconds = 0.8 * recentSeconds + 0.2 * (job.timings().total() / 1e9);
        }
        if (job.cancelled() && !job.failed()) {   // failed and refused jobs are cancelled too, but not by a client
            cancelled.incrementAndGet();
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
        try {
            memory.afterRequest();   // once per request, never per segment
        } finally {
            job.release();
        }
    }

    /** A segment's work reached its end: every chunk of it is in the job, then it settles. */
    void complete(SynthesisJob job, int index) {
        job.complete(index);
        settle(job, index);
    }

    /** A segment failed: the job fails (the first failure is what its caller sees) and the segment settles. */
    void fail(SynthesisJob job, int index, Throwable e) {
        job.fail(e);
        settle(job, index);
    }

    /** Stops admitting; the runner's wait returns null. */
    void stop() {
        lock.lock();
        try {
            running = false;
            wake.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** After stop: fails every request still queued. */
    void failQueued(Throwable e) {
        List<Waiting> left;
        lock.lock();
        try {
            left = new ArrayList<>(waiting);
            waiting.clear();
        } finally {
            lock.unlock();
        }
        for (Waiting w : left) {
            w.job.fail(e);
            for (int i = w.admitted; i < w.job.segments; i++) {
                settle(w.job, i);
            }
        }
    }

    int queued() {
        lock.lock();
        try {
            return waiting.size();
        } finally {
            lock.unlock();
        }
    }

    long cancelled() {
        return cancelled.get();
    }

    long refused() {
        return refused.get();
    }

    /** Test hook: runs {@code r} while nothing can be admitted, so requests submitted inside it join together. */
    void whileHoldingAdmission(Runnable r) {
        lock.lock();
        try {
            r.run();
        } finally {
            lock.unlock();
        }
    }

    private int retryAfter() {
        return (int) Math.max(1, Math.min(60, Math.ceil(recentSeconds)));
    }

    /** Whether the flow stage has room: segments waiting for a worker stay under the backlog bound. */
    private boolean flowHasRoom() {
        return chunks.size() < Math.max(1, settings.flowBacklog());
    }

    /** Under the lock: whether a waiting segment may join now. */
    private boolean admissible(int batchSize) {
        if (waiting.isEmpty() || !flowHasRoom()) {
            return false;
        }
        if (settings.batching()) {
            return batchSize < settings.maxRows();
        }
        return exclusive == null || exclusive == waiting.peek().job;
    }

    /** Under the lock: drops cancelled requests from the queue and refuses those that waited too long. */
    private void expire() {
        long now = System.nanoTime();
        List<Waiting> gone = new ArrayList<>();
        for (Iterator<Waiting> it = waiting.iterator(); it.hasNext(); ) {
            Waiting w = it.next();
            SynthesisJob job = w.job;
            boolean late = w.admitted == 0 && now - w.submitted > settings.queueTimeout().toNanos();
            if (job.cancelled() || late) {
                it.remove();
                if (late && !job.cancelled()) {
                    refused.incrementAndGet();
                    job.fail(new Synthesizer.Busy("waited " + settings.queueTimeout().toSeconds() + " s for the engine; retry shortly.",
                            retryAfter()));
                }
                gone.add(w);
            }
        }
        for (Waiting w : gone) {
            for (int i = w.admitted; i < w.job.segments; i++) {
                settle(w.job, i);
            }
        }
    }

    /** Under the lock: the segments that join the batch now, oldest request first. */
    private List<Admission> admit(int size) {
        List<Admission> fresh = new ArrayList<>();
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
            fresh.add(new Admission(job, w.admitted++));
            if (w.admitted == job.segments) {
                waiting.poll();
            }
        }
        return fresh;
    }
}
