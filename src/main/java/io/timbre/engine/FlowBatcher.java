package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Flow batching across requests: the estimator steps of flow runs (hops or whole segments, of any requests) in
 * progress at the same time run as one call, their CFG pairs stacked along the batch dimension (each row keeps its
 * own time t, speaker and condition). Flat combining, no thread of its own: a chunk worker that reaches an Euler step
 * queues it. A call runs once no call is running and every flow in progress has its next step queued (or
 * {@code maxRuns} are): the worker whose step completes that set leads. It takes the oldest step and every other one
 * that can share its call (same estimator method and streaming flag; the same frame count unless the pack declares
 * its estimator padding-invariant, then the shorter are right-padded with zero mask), runs them, hands each run its
 * rows and wakes the others. Between two steps a run only updates its noise, so the wait for the others is short
 * and needs no timer; the flows in progress stay in step with each other, a flow that starts (its encoder done)
 * joins the next call, one that ends leaves the count.
 *
 * <p>A step that runs alone takes exactly the path of an unbatched flow (same call, same bytes). Stacked rows agree
 * with the same step run alone to float rounding (measured: 3e-7 on the full-size CosyVoice 2 estimator, 2e-6 on the
 * bench pack), not bit for bit, so with batching a request's audio depends on its batch-mates within that rounding.
 * A failed stacked call is retried one run at a time, so only a run whose own call fails gets the error.
 *
 * <p>Ownership: the inputs stay their run's (its thread waits until its rows are back); the leader computes in its
 * own PointerScope and hands each run its rows detached, and the run's thread attaches them to its own scope.
 */
final class FlowBatcher implements FlowDecoder.Estimator {
    private final ModelPack pack;
    private final int maxRuns;
    private final boolean padding;
    private final java.util.concurrent.Semaphore compute;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition served = lock.newCondition();
    private final ArrayDeque<Call> waiting = new ArrayDeque<>();
    private boolean leading;
    /** Flow runs between {@link #begin} and {@link #end}. */
    private int active;
    private final AtomicLong calls = new AtomicLong();
    private final AtomicLong steps = new AtomicLong();
    private final AtomicLong retried = new AtomicLong();

    private static final class Call {
        final FlowDecoder.Step step;
        Tensor rows;
        RuntimeException error;
        Error fatal;
        boolean done;

        Call(FlowDecoder.Step step) {
            this.step = step;
        }
    }

    /** @param maxRuns most flow runs stacked into one estimator call (1: every step runs alone) */
    FlowBatcher(ModelPack pack, int maxRuns) {
        this(pack, maxRuns, null);
    }

    /**
     * @param compute the callers' compute permits, or null: a caller holds one when it calls {@link #estimate}; it
     *                gives it back while it waits for a call, and the leader holds one while the call runs
     */
    FlowBatcher(ModelPack pack, int maxRuns, java.util.concurrent.Semaphore compute) {
        this.compute = compute;
        this.pack = pack;
        this.maxRuns = Math.max(1, maxRuns);
        this.padding = pack.manifest.flowPaddingInvariant();
    }

    int maxRuns() {
        return maxRuns;
    }

    /** Estimator calls run. */
    long calls() {
        return calls.get();
    }

    /** Flow runs' steps served (divided by {@link #calls()}: the mean stack). */
    long steps() {
        return steps.get();
    }

    /** Steps queued for the next call now. */
    int waiting() {
        lock.lock();
        try {
            return waiting.size();
        } finally {
            lock.unlock();
        }
    }

    /** Stacked calls that failed and were retried one run at a time. */
    long retried() {
        return retried.get();
    }

    @Override
    public void begin() {
        if (maxRuns == 1) {
            return;
        }
        lock.lock();
        try {
            active++;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void end() {
        if (maxRuns == 1) {
            return;
        }
        lock.lock();
        try {
            active--;
            served.signalAll();   // the others may now all be waiting
        } finally {
            lock.unlock();
        }
    }

    @Override
    public Tensor estimate(FlowDecoder.Step step) {
        if (maxRuns == 1) {
            calls.incrementAndGet();
            steps.incrementAndGet();
            return FlowDecoder.call(pack, step);
        }
        Call mine = new Call(step);
        if (compute != null) {
            compute.release();
        }
        lock.lock();
        try {
            waiting.add(mine);
            while (!mine.done) {
                if (leading || (waiting.size() < active && waiting.size() < maxRuns)) {
                    served.awaitUninterruptibly();
                    continue;
                }
                leading = true;
                List<Call> batch = take();
                lock.unlock();
                try {
                    if (compute != null) {
                        compute.acquireUninterruptibly();
                    }
                    try {
                        run(batch);
                    } finally {
                        if (compute != null) {
                            compute.release();
                        }
                    }
                } finally {
                    lock.lock();
                    leading = false;
                    served.signalAll();
                }
            }
        } finally {
            lock.unlock();
            if (compute != null) {
                compute.acquireUninterruptibly();   // back to computing
            }
        }
        if (mine.fatal != null) {
            throw mine.fatal;
        }
        if (mine.error != null) {
            throw mine.error;
        }
        PointerScope scope = PointerScope.getInnerScope();
        if (scope != null) {
            scope.attach(mine.rows);
        }
        mine.rows.releaseReference();   // now the caller's scope's alone
        return mine.rows;
    }

    /** Under the lock: the oldest waiting step and those that can share its call, at most maxRuns. */
    private List<Call> take() {
        List<Call> batch = new ArrayList<>();
        Call first = waiting.poll();
        batch.add(first);
        for (Iterator<Call> it = waiting.iterator(); it.hasNext() && batch.size() < maxRuns; ) {
            Call c = it.next();
            if (shares(first.step, c.step)) {
                batch.add(c);
                it.remove();
            }
        }
        return batch;
    }

    private boolean shares(FlowDecoder.Step a, FlowDecoder.Step b) {
        return java.util.Objects.equals(a.streaming(), b.streaming()) && (padding || a.frames() == b.frames());
    }

    /** Outside the lock: one call for the batch (or, when the stacked call fails, one per run); marks every call done. */
    private void run(List<Call> batch) {
        try {
            if (batch.size() > 1) {
                try (PointerScope scope = new PointerScope()) {
                    Tensor v = FlowDecoder.call(pack, stack(batch.stream().map(c -> c.step).toList()));
                    calls.incrementAndGet();
                    steps.addAndGet(batch.size());
                    for (int i = 0; i < batch.size(); i++) {
                        Call c = batch.get(i);
                        hand(c, v.narrow(0, 2L * i, 2).narrow(2, 0, c.step.frames()), scope);
                    }
                    return;
                } catch (RuntimeException e) {
                    retried.incrementAndGet();
                    for (Call c : batch) {
                        release(c);
                    }
                }
            }
            for (Call c : batch) {
                runAlone(c);
            }
        } catch (Error e) {
            for (Call c : batch) {
                if (!c.done) {
                    release(c);
                    c.fatal = e;
                    c.done = true;
                }
            }
        }
    }

    private void runAlone(Call c) {
        try (PointerScope scope = new PointerScope()) {
            Tensor rows = FlowDecoder.call(pack, c.step);
            calls.incrementAndGet();
            steps.incrementAndGet();
            hand(c, rows, scope);
        } catch (RuntimeException e) {
            c.error = e;
            c.done = true;
        }
    }

    /** The call's rows, taken out of the leader's scope (the run's thread attaches them to its own); the call is done. */
    private static void hand(Call c, Tensor rows, PointerScope leaders) {
        rows.retainReference();
        leaders.detach(rows);
        c.rows = rows;
        c.done = true;
    }

    private static void release(Call c) {
        if (c.rows != null) {
            c.rows.releaseReference();
            c.rows = null;
        }
        c.done = false;
    }

    /**
     * Steps stacked along the batch dimension, the shorter right-padded (zero mask) to the longest; their streaming
     * flag is the first's. In the caller's PointerScope.
     */
    static FlowDecoder.Step stack(List<FlowDecoder.Step> batch) {
        long frames = 0;
        for (FlowDecoder.Step s : batch) {
            frames = Math.max(frames, s.frames());
        }
        int n = batch.size();
        Tensor[] x = new Tensor[n], mask = new Tensor[n], mu = new Tensor[n], t = new Tensor[n], spks = new Tensor[n], cond = new Tensor[n];
        for (int i = 0; i < n; i++) {
            FlowDecoder.Step s = batch.get(i);
            long pad = frames - s.frames();
            x[i] = pad(s.x(), pad);
            mask[i] = pad(s.mask(), pad);
            mu[i] = pad(s.mu(), pad);
            cond[i] = pad(s.cond(), pad);
            t[i] = s.t();
            spks[i] = s.spks();
        }
        return new FlowDecoder.Step(Tensors.cat(0, x), Tensors.cat(0, mask), Tensors.cat(0, mu), Tensors.cat(0, t),
                Tensors.cat(0, spks), Tensors.cat(0, cond), batch.get(0).streaming());
    }

    private static Tensor pad(Tensor t, long frames) {
        return frames == 0 ? t : torch.constant_pad_nd(t, new long[]{0, frames}, new Scalar(0.0));
    }
}
