package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;

/**
 * The runner's chunk work on a fixed pool of workers: the flow and vocoder of a whole segment (with CosyVoice's
 * speed stretch in between), or the hops of a segment streamed by hop ({@link HopStream}). Work pushes its audio
 * into the job and reports each segment's end to the {@link Scheduler}; it never waits on the LLM loop. The
 * queue is the scheduler's (it bounds it and takes cancelled jobs' work out of it); a cancelled job's work that
 * still reaches a worker is skipped there, running work stops between Euler steps.
 */
final class ChunkWorkers {
    private final ModelPack pack;
    private final FlowBatcher batcher;
    /**
     * Permits to compute: {@code workers} of them. With flow batching the pool has more threads than that, so that
     * as many flows can wait on one stacked call, but a thread waiting there gives its permit back: no more than
     * {@code workers} threads run encoders, vocoders and Euler updates at once, as without flow batching.
     */
    private final Semaphore compute;
    private final FlowDecoder flow;
    private final Vocoder vocoder;
    private final Scheduler scheduler;
    private final ThreadPoolExecutor pool;
    private final BiConsumer<SynthesisJob, Integer> flowStepHook;
    private final AtomicLong vocoderCalls = new AtomicLong();

    /**
     * @param workers      threads that compute at once; the pool has at least {@code flowBatch} threads, so that as
     *                     many flows can wait on one stacked call
     * @param flowBatch    most flow runs whose estimator steps share one call ({@link FlowBatcher}; 1: each alone)
     * @param flowStepHook hears every Euler step a whole segment's flow completes (job, step); for tests
     */
    ChunkWorkers(ModelPack pack, int workers, int flowBatch, BlockingQueue<Runnable> queue, Scheduler scheduler,
                 BiConsumer<SynthesisJob, Integer> flowStepHook) {
        this.pack = pack;
        this.compute = new Semaphore(Math.max(1, workers));
        this.batcher = new FlowBatcher(pack, flowBatch, compute);
        this.flow = new FlowDecoder(pack, batcher);
        this.vocoder = new Vocoder(pack);
        this.scheduler = scheduler;
        this.flowStepHook = flowStepHook;
        AtomicInteger n = new AtomicInteger();
        int w = Math.max(Math.max(1, workers), batcher.maxRuns());
        this.pool = new ThreadPoolExecutor(w, w, 0, TimeUnit.MILLISECONDS, queue, r -> {
            Thread t = new Thread(r, "timbre-segment-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** Chunk work waiting for a worker. */
    int queued() {
        return pool.getQueue().size();
    }

    int running() {
        return pool.getActiveCount();
    }

    /** Flow Euler steps run (each one estimator step of one flow, alone or stacked). */
    long flowSteps() {
        return batcher.steps();
    }

    long vocoderCalls() {
        return vocoderCalls.get();
    }

    FlowBatcher batcher() {
        return batcher;
    }

    /** Flow + vocoder of one finished segment on a worker; its audio goes into the job when it exists. */
    void vocode(SynthesisJob job, int index, int[] tokens) {
        job.tokensDone(index, tokens.length);
        if (tokens.length == 0) {
            job.chunk(index, new float[0], 0, 0);
            scheduler.complete(job, index);
            return;
        }
        long handedOn = System.nanoTime();
        try {
            pool.execute(new Scheduler.SegmentWork(job, index, () -> {
                if (job.cancelled()) {
                    scheduler.settle(job, index);
                    return;
                }
                compute.acquireUninterruptibly();
                try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode();
                     RandomSource random = RandomSource.forSegment(job.seed, index)) {
                    long a = System.nanoTime();
                    job.flowStarted(a - handedOn);
                    Tensor mel = stretch(flow.decode(job.features, tokens, job::cancelled, step -> {
                        flowStepHook.accept(job, step);
                    }), job.speed);
                    long b = System.nanoTime();
                    if (job.cancelled()) {   // the client left during the flow: no vocoder
                        scheduler.settle(job, index);
                        return;
                    }
                    vocoderCalls.incrementAndGet();
                    float[] pcm = vocoder.vocode(mel, random);
                    job.chunk(index, pcm, b - a, System.nanoTime() - b);
                    scheduler.complete(job, index);
                } catch (SynthesisJob.CancelledException e) {
                    scheduler.settle(job, index);
                } catch (RuntimeException | Error e) {
                    scheduler.fail(job, index, e);
                } finally {
                    compute.release();
                }
            }));
        } catch (RuntimeException e) {   // the pool is shut down
            scheduler.fail(job, index, e);
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

    /** Opens the hop stream of a segment streamed by hop. */
    HopStream hops(SynthesisJob job, int index) {
        return new HopStream(job, index);
    }

    /**
     * The chunk side of one segment streamed by hop: its {@link HopDecoder} and {@link RandomSource}, the tokens
     * sampled so far, and whether a hop is running. The LLM loop offers tokens after every step; a hop runs on a
     * worker when the decoder is ready and none of this segment's hops is running (a segment's hops run in order,
     * one at a time, interleaved with other requests' work); a finished hop starts the next itself once the LLM is
     * done (no polling). The decoder is touched only by the thread that set {@code running}, or under this monitor
     * while nothing runs.
     */
    final class HopStream {
        private final SynthesisJob job;
        private final int index;
        private final RandomSource random;
        private final HopDecoder decoder;
        private int[] tokens = new int[0];
        private boolean llmDone;
        private boolean running;
        private boolean closed;

        private HopStream(SynthesisJob job, int index) {
            this.job = job;
            this.index = index;
            this.random = RandomSource.forSegment(job.seed, index);
            HopDecoder d;
            try {
                d = new HopDecoder(pack, job.features, random, batcher);
            } catch (RuntimeException e) {
                random.close();
                throw e;
            }
            this.decoder = d;
        }

        /** LLM thread, after a step: the row's tokens so far ({@code done}: all of them). */
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
                pool.execute(this::runHop);
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
            compute.acquireUninterruptibly();
            try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                if (!job.cancelled()) {
                    float[] pcm = decoder.next(t, done, job::cancelled);
                    vocoderCalls.incrementAndGet();
                    job.chunk(index, pcm, decoder.lastFlowNanos(), decoder.lastVocoderNanos());
                }
            } catch (SynthesisJob.CancelledException e) {
                // the job is cancelled: settled below
            } catch (RuntimeException | Error e) {
                job.fail(e);
            } finally {
                compute.release();
            }
            synchronized (this) {
                running = false;
                if (job.cancelled() || closed || decoder.finished()) {
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

        /** Under the monitor, with no hop running: frees the decoder and the generator, the segment is done. */
        private void closeAndSettle() {
            closed = true;
            decoder.close();
            random.close();
            if (job.cancelled()) {
                scheduler.settle(job, index);
            } else {
                scheduler.complete(job, index);
            }
        }
    }

    /** Lets queued work finish (a cancelled job's work settles at once) and stops the workers. */
    void shutdown() {
        pool.shutdown();
        try {
            pool.awaitTermination(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
