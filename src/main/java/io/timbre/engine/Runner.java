package io.timbre.engine;

import org.jboss.logging.Logger;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;

/**
 * The LLM loop: one thread that runs the pack's LLM as continuous batching. Between steps it takes the segments
 * the {@link Scheduler} admits (their rows are prefilled together and join the batch), then runs one decode step
 * for every row, each with its own seeded sampler, so a segment's tokens do not depend on what else runs. A
 * finished row's tokens go to the {@link ChunkWorkers} (whole-segment flow + vocoder), or, for a segment streamed
 * by hop, its tokens go to its hop stream after every step. A row whose prefill or decode fails alone fails its
 * own request; the batch goes on.
 */
final class Runner {
    private static final Logger LOG = Logger.getLogger(Runner.class);
    private static final String START_FAILED = "the speech model could not start this request (its speaker features or text are not usable)";

    /** A segment in the LLM batch; {@code hop} is its hop stream when the request streams by hop. */
    private record Segment(SynthesisJob job, int index, ChunkWorkers.HopStream hop) {
    }

    private final SpeechLm lm;
    private final Scheduler scheduler;
    private final ChunkWorkers chunks;
    private final BiConsumer<SynthesisJob, SpeechLm.Row> rowHook;
    private final Thread thread;
    /** The segment each LLM row generates; only the loop's thread reads or writes it. */
    private final IdentityHashMap<SpeechLm.Row, Segment> segments = new IdentityHashMap<>();
    private final AtomicLong steps = new AtomicLong();
    private final AtomicLong rowSteps = new AtomicLong();
    private final AtomicLong isolatedFailures = new AtomicLong();
    private volatile int largest;
    private volatile int rows;

    /** @param rowHook sees every row as it is admitted (job, row), e.g. to corrupt one mid-generation; for tests */
    Runner(ModelPack pack, Scheduler scheduler, ChunkWorkers chunks, BiConsumer<SynthesisJob, SpeechLm.Row> rowHook) {
        this.lm = new SpeechLm(pack);
        this.scheduler = scheduler;
        this.chunks = chunks;
        this.rowHook = rowHook;
        this.thread = new Thread(this::run, "timbre-llm");
        this.thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    /** Waits for the loop to end (after {@link Scheduler#stop()}). */
    void join() {
        try {
            thread.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    long steps() {
        return steps.get();
    }

    long rowSteps() {
        return rowSteps.get();
    }

    int largest() {
        return largest;
    }

    int rows() {
        return rows;
    }

    long isolatedFailures() {
        return isolatedFailures.get();
    }

    private void run() {
        SpeechLm.Batch batch = lm.new Batch();
        IllegalStateException closed = new IllegalStateException("the synthesizer was closed");
        try {
            while (true) {
                List<Scheduler.Admission> admitted = scheduler.admissions(batch.size());
                if (admitted == null) {
                    break;
                }
                List<SpeechLm.Row> fresh = rows(admitted);
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
                    failAll(batch, fresh, e);
                    batch.reset();
                    rows = 0;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            failAll(batch, List.of(), closed);
            batch.close();
            scheduler.failQueued(closed);
        }
    }

    /** The LLM rows of the admitted segments (and the hop streams of those streamed by hop). */
    private List<SpeechLm.Row> rows(List<Scheduler.Admission> admitted) {
        List<SpeechLm.Row> fresh = new ArrayList<>(admitted.size());
        for (Scheduler.Admission a : admitted) {
            SynthesisJob job = a.job();
            ChunkWorkers.HopStream hop;
            try {
                hop = job.hops ? chunks.hops(job, a.index()) : null;
            } catch (RuntimeException e) {
                scheduler.fail(job, a.index(), e);
                continue;
            }
            SpeechLm.Row row = lm.row(job.inputs.get(a.index()));
            segments.put(row, new Segment(job, a.index(), hop));
            rowHook.accept(job, row);
            fresh.add(row);
        }
        return fresh;
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
            chunks.vocode(s.job(), s.index(), row.tokens());
            return;
        }
        s.job().tokensDone(s.index(), row.count());
        s.hop().offer(row, true);
    }

    /** The segment no longer generates and will not be vocoded here (cancelled, failed). */
    private void release(Segment s) {
        if (s.hop() != null) {
            s.hop().abandon();
        } else {
            scheduler.settle(s.job(), s.index());
        }
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

    /** Fails every row of the batch and the fresh rows not yet in it; each request gets {@code e}. */
    private void failAll(SpeechLm.Batch batch, List<SpeechLm.Row> fresh, Throwable e) {
        List<SpeechLm.Row> all = new ArrayList<>(batch.rows());
        for (SpeechLm.Row r : fresh) {
            if (!all.contains(r)) {
                all.add(r);
            }
        }
        for (SpeechLm.Row r : all) {
            Segment s = segments.remove(r);
            if (s != null) {
                s.job().fail(e);
                release(s);
            }
        }
    }

    /** TorchScript puts the error itself on the last line of its traceback. */
    private static String lastLine(String s) {
        if (s == null) {
            return "unknown error";
        }
        String t = s.strip();
        return t.substring(t.lastIndexOf('\n') + 1);
    }
}
