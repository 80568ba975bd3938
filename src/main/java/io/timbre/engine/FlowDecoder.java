package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Speech tokens -> mel with the pack's flow: encode once, then the Euler ODE over a cosine time schedule with
 * classifier-free guidance as a batch of two (CausalConditionalCFM.solve_euler), from the pack's fixed noise;
 * the prompt's mel frames are trimmed off. Call inside the caller's PointerScope and InferenceMode.
 */
public final class FlowDecoder {
    private final ModelPack pack;
    private final Estimator estimator;
    private final float[] tSpan;

    /**
     * One velocity evaluation of one flow run: the estimator's inputs with classifier-free guidance as a batch of two
     * (conditional, unconditional); {@code streaming} null: {@code estimate}, else {@code estimate_streaming} with it.
     */
    public record Step(Tensor x, Tensor mask, Tensor mu, Tensor t, Tensor spks, Tensor cond, Boolean streaming) {
        /** Mel frames of this step's inputs. */
        public long frames() {
            return x.size(2);
        }
    }

    /** Runs the estimator of {@link Step}s: alone ({@link #direct}), or stacked with other runs' ({@link FlowBatcher}). */
    public interface Estimator {
        /** @return the velocity, [2, 80, frames], owned by the caller's PointerScope */
        Tensor estimate(Step step);

        /** A flow run starts its Euler steps (its encoder is done); every begin is followed by one {@link #end}. */
        default void begin() {
        }

        /** The run's last step is done, or it stopped (cancelled, failed). */
        default void end() {
        }

        /** The pack's estimator, one call per step. */
        static Estimator direct(ModelPack pack) {
            return step -> FlowDecoder.call(pack, step);
        }
    }

    public FlowDecoder(ModelPack pack) {
        this(pack, Estimator.direct(pack));
    }

    public FlowDecoder(ModelPack pack, Estimator estimator) {
        this.pack = pack;
        this.estimator = estimator;
        this.tSpan = cosineSchedule(pack.manifest.flowSteps());
    }

    /** One call of the pack's estimator over the step's (possibly stacked) inputs. */
    static Tensor call(ModelPack pack, Step s) {
        return Tensors.tensor(s.streaming() == null
                ? Tensors.call(pack.estimate, s.x(), s.mask(), s.mu(), s.t(), s.spks(), s.cond())
                : Tensors.call(pack.estimateStreaming, s.x(), s.mask(), s.mu(), s.t(), s.spks(), s.cond(), s.streaming()));
    }

    /** 1 - cos(linspace(0, 1, n + 1) * 0.5 * pi), with the same float32 torch ops as the reference. */
    static float[] cosineSchedule(int steps) {
        try (PointerScope scope = new PointerScope()) {
            Tensor t = torch.linspace(new Scalar(0.0), new Scalar(1.0), steps + 1);
            t = t.mul(new Scalar(0.5)).mul(new Scalar(Math.PI)).cos();
            return Tensors.toFloats(torch.ones_like(t).sub(t));
        }
    }

    /** @return the new part's mel, [1, 80, 2 * tokens.length] */
    public Tensor decode(SpeakerFeatures spk, int[] tokens) {
        return decode(spk, tokens, () -> false, step -> { });
    }

    /**
     * Like {@link #decode(SpeakerFeatures, int[])}, but asks {@code cancelled} before every Euler step and stops
     * with {@link SynthesisJob.CancelledException} once it says yes (a client that left stops costing the flow);
     * {@code afterStep} hears each completed step (1-based).
     */
    public Tensor decode(SpeakerFeatures spk, int[] tokens, java.util.function.BooleanSupplier cancelled,
                         java.util.function.IntConsumer afterStep) {
        return run(spk, tokens, tokens.length, 0, false, false, cancelled, afterStep);
    }

    /**
     * One streamed hop's flow, as CosyVoice's {@code flow.inference(streaming, finalize)}: the first {@code count}
     * of {@code tokens} after the prompt; with {@code context} > 0 the last {@code context} of them are only the
     * encoder's lookahead (finalize=False) and the mel covers count - context tokens; {@code streaming}: the chunk
     * attention masks of the encoder and the estimator ({@code encode_streaming} / {@code estimate_streaming}).
     *
     * @return the mel after the prompt, [1, 80, 2 * (count - context)]
     */
    public Tensor decodeStreaming(SpeakerFeatures spk, int[] tokens, int count, int context, boolean streaming,
                                  java.util.function.BooleanSupplier cancelled) {
        return run(spk, tokens, count, context, streaming, true, cancelled, step -> { });
    }

    private Tensor run(SpeakerFeatures spk, int[] tokens, int used, int context, boolean streaming, boolean streamingMethods,
                       java.util.function.BooleanSupplier cancelled, java.util.function.IntConsumer afterStep) {
        var dev = pack.device;
        long count = (long) spk.tokenLength() + used;
        long frames = 2L * (count - context);
        if (frames > pack.manifest.noiseFrames()) {
            throw new IllegalArgumentException("segment too long for the flow: " + frames + " mel frames, the pack's noise covers "
                    + pack.manifest.noiseFrames());
        }
        long[] fresh = new long[used];
        for (int i = 0; i < used; i++) {
            fresh[i] = tokens[i];
        }
        // the prompt's tokens stay on the device: joined there, not copied to the heap and back per segment
        Tensor ids = Tensors.cat(1, spk.speechTokens().to(ScalarType.Long),
                Tensors.on(Tensors.longs(fresh, 1, fresh.length), dev));
        Tensor countT = Tensors.on(Tensors.longs(new long[]{count}, 1), dev);
        Tensor featLen = Tensors.on(Tensors.longs(new long[]{spk.featFrames()}, 1), dev);
        IValue enc = streamingMethods
                ? Tensors.call(pack.encodeStreaming, ids, countT, spk.speechFeat(), featLen, spk.embedding(), (long) context, streaming)
                : Tensors.call(pack.encode, ids, countT, spk.speechFeat(), featLen, spk.embedding());
        Tensor mu = Tensors.element(enc, 0);
        Tensor mask = Tensors.element(enc, 1);
        Tensor spks = Tensors.element(enc, 2);
        Tensor cond = Tensors.element(enc, 3);
        Tensor x = Tensors.tensor(Tensors.call(pack.noise, frames));
        Tensor maskIn = Tensors.cat(0, mask, mask);
        Tensor muIn = Tensors.cat(0, mu, torch.zeros_like(mu));
        Tensor spksIn = Tensors.cat(0, spks, torch.zeros_like(spks));
        Tensor condIn = Tensors.cat(0, cond, torch.zeros_like(cond));
        double cfg = pack.manifest.cfgRate();
        Scalar condWeight = new Scalar(1.0 + cfg);
        Scalar uncondWeight = new Scalar(cfg);
        float t = tSpan[0];
        float dt = tSpan[1] - tSpan[0];
        estimator.begin();
        try {
            for (int step = 1; step < tSpan.length; step++) {
                if (cancelled.getAsBoolean()) {
                    throw new SynthesisJob.CancelledException();
                }
                Tensor tIn = Tensors.on(Tensors.floats(new float[]{t, t}, 2), dev);
                Tensor v = estimator.estimate(new Step(Tensors.cat(0, x, x), maskIn, muIn, tIn, spksIn, condIn,
                        streamingMethods ? streaming : null));
                Tensor guided = v.narrow(0, 0, 1).mul(condWeight).sub(v.narrow(0, 1, 1).mul(uncondWeight));
                x = x.add(guided.mul(new Scalar(dt)));
                t = t + dt;
                if (step < tSpan.length - 1) {
                    dt = tSpan[step + 1] - t;
                }
                afterStep.accept(step);
            }
        } finally {
            estimator.end();
        }
        return x.narrow(2, spk.featFrames(), frames - spk.featFrames()).contiguous();
    }
}
