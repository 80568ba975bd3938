package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

/**
 * Chunked streaming of one segment, with CosyVoice 2's semantics ({@code CosyVoice2Model.tts(stream=True)} and
 * {@code token2wav} in cosyvoice/cli/model.py, main ace7c47): speech tokens go to the flow in hops of
 * {@code token_hop_len} (25) tokens plus {@code pre_lookahead_len} (3) lookahead tokens; the first hop is padded so
 * that prompt plus first hop end on the flow's 25-token chunk boundary; hops grow x2 up to 100 tokens. Each hop
 * re-runs the flow over the prompt and all tokens so far in streaming mode (chunk attention masks, the lookahead
 * tokens only as context) and keeps the new mel; HiFT keeps the last 8 mel frames and 3840 source samples and
 * cross-fades the seam with a Hamming window, holding back the last 3840 samples until the next hop. When the LLM
 * is done, the rest is flushed (as upstream: the flow without lookahead and without chunk masks).
 *
 * <p>The vocoder's part follows the pack's declaration (pack.json {@code streaming.vocoder_cache}): "crossfade" (the
 * default, CosyVoice 2) as above; "rerun" (CosyVoice 3, {@code CosyVoice3Model.token2wav}): the hop's new mel joins all
 * the mel so far, the causal vocoder re-runs over it ({@code vocode_streaming}, finalize only for the flush, so a hop
 * holds back the vocoder's look-ahead) and the hop's samples are those past the ones already emitted; no cross-fade
 * and no source cache. The hop plan and the flow are the same for both.
 *
 * <p>Unlike upstream, every piece of hop state (token offset, hop length, HiFT cache) belongs to this instance:
 * one request's stream never changes another's hops. Per-request and single-threaded: the engine's runner calls it,
 * it never calls back. Owns its cached tensors; {@link #close()} frees them (idempotent). The {@link RandomSource}
 * stays the caller's.
 */
public final class HopDecoder implements AutoCloseable {
    private final ModelPack pack;
    private final SpeakerFeatures spk;
    private final RandomSource random;
    private final PackManifest.Streaming cfg;
    private final FlowDecoder flow;
    private final Vocoder vocoder;
    private final int promptPad;
    private final double[] window;
    /** streaming.vocoder_cache "rerun": the vocoder re-runs over all the mel so far (no cross-fade, no source cache). */
    private final boolean rerun;
    private int tokenOffset;
    /** rerun: samples of the segment emitted so far (CosyVoice3Model's speech_offset). */
    private int speechOffset;
    private int hopLen;
    private int hops;
    private boolean finished;
    private long flowNanos;
    private long vocoderNanos;
    private final AtomicBoolean closed = new AtomicBoolean();
    // HiFT cache (CosyVoice's hift_cache_dict[uuid]): owned here, released when replaced and on close. Crossfade: the
    // last mel frames and source samples of the previous hop; rerun: all the mel so far (no source)
    private Tensor melCache;
    private Tensor sourceCache;
    private float[] speechCache;

    /** One hop's plan: the tokens it consumes ({@code offset} to {@code offset + hop}), and whether it is the flush. */
    public record Hop(int index, int offset, int hop, boolean last) {
    }

    public HopDecoder(ModelPack pack, SpeakerFeatures spk, RandomSource random) {
        this(pack, spk, random, FlowDecoder.Estimator.direct(pack));
    }

    /** @param estimator runs the flow's estimator steps (the engine's {@link FlowBatcher} stacks them across requests) */
    public HopDecoder(ModelPack pack, SpeakerFeatures spk, RandomSource random, FlowDecoder.Estimator estimator) {
        this.cfg = pack.manifest.streaming();
        if (!pack.streams()) {
            throw new PackException("model pack " + pack.key() + " cannot stream by hop (no 'streaming' in pack.json or no "
                    + "flow.encode_streaming / estimate_streaming): re-export it");
        }
        if (cfg.tokenHopLen() != cfg.encoderChunk()) {
            throw new PackException("model pack " + pack.key() + ": token_hop_len " + cfg.tokenHopLen()
                    + " must equal the flow encoder's chunk " + cfg.encoderChunk());
        }
        this.pack = pack;
        this.spk = spk;
        this.random = random;
        this.flow = new FlowDecoder(pack, estimator);
        this.vocoder = new Vocoder(pack);
        int prompt = spk.tokenLength();
        int hop = cfg.tokenHopLen();
        this.promptPad = (prompt + hop - 1) / hop * hop - prompt;
        this.hopLen = hop;
        this.rerun = cfg.vocoderCache() == PackManifest.VocoderCache.RERUN;
        this.window = rerun ? new double[0] : hamming(2 * cfg.sourceCacheSamples());
    }

    /** numpy.hamming(n): 0.54 - 0.46 cos(2 pi k / (n - 1)). */
    static double[] hamming(int n) {
        double[] w = new double[n];
        for (int k = 0; k < n; k++) {
            w[k] = 0.54 - 0.46 * Math.cos(2.0 * Math.PI * k / (n - 1));
        }
        return w;
    }

    /** Tokens the next hop consumes (without its lookahead): the first is padded to the prompt's chunk boundary. */
    int thisHop() {
        return tokenOffset == 0 ? hopLen + promptPad : hopLen;
    }

    /** True when a hop (or, with {@code llmDone}, the final flush) can run now. */
    public boolean ready(int tokensAvailable, boolean llmDone) {
        if (finished || closed.get()) {
            return false;
        }
        return tokensAvailable - tokenOffset >= thisHop() + cfg.preLookaheadLen() || llmDone;
    }

    /** What {@link #next} would do now with these many tokens; null when nothing can run. */
    public Hop plan(int tokensAvailable, boolean llmDone) {
        if (!ready(tokensAvailable, llmDone)) {
            return null;
        }
        int hop = thisHop();
        if (tokensAvailable - tokenOffset >= hop + cfg.preLookaheadLen()) {
            return new Hop(hops, tokenOffset, hop, false);
        }
        return new Hop(hops, tokenOffset, tokensAvailable - tokenOffset, true);
    }

    public boolean finished() {
        return finished;
    }

    /** Wall time of the last hop's flow (encoder and Euler steps), in nanoseconds. */
    public long lastFlowNanos() {
        return flowNanos;
    }

    /** Wall time of the last hop's vocoder call and cross-fade, in nanoseconds. */
    public long lastVocoderNanos() {
        return vocoderNanos;
    }

    /** Tokens consumed so far (the next hop starts here). */
    public int tokenOffset() {
        return tokenOffset;
    }

    /**
     * Runs one hop, or the final flush when {@code llmDone} and fewer than a hop plus its lookahead remain, and returns
     * its new samples (a hop holds back its last {@code source_cache_samples} for the cross-fade, or with a re-run
     * vocoder the samples its look-ahead still changes; the flush returns them). Stops with {@link SynthesisJob.CancelledException} between Euler steps once {@code cancelled} says so.
     *
     * @param tokensSoFar all speech tokens of the segment sampled so far (grows between calls)
     */
    public float[] next(int[] tokensSoFar, boolean llmDone, BooleanSupplier cancelled) {
        Hop plan = plan(tokensSoFar.length, llmDone);
        if (plan == null) {
            throw new IllegalStateException(finished ? "the segment is already flushed"
                    : "not enough tokens for a hop: " + tokensSoFar.length + " sampled, offset " + tokenOffset);
        }
        if (plan.last() && tokensSoFar.length == 0) {   // the LLM stopped at once: nothing to say
            finished = true;
            hops++;
            return new float[0];
        }
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            int ratio = 2;
            long t0 = System.nanoTime();
            Tensor mel;
            if (!plan.last()) {
                int used = tokenOffset + plan.hop() + cfg.preLookaheadLen();
                mel = flow.decodeStreaming(spk, tokensSoFar, used, cfg.preLookaheadLen(), true, cancelled);
            } else {
                // upstream's flush: token2wav(finalize=True) without stream=..., i.e. streaming=False
                mel = flow.decodeStreaming(spk, tokensSoFar, tokensSoFar.length, 0, false, cancelled);
            }
            mel = mel.narrow(2, (long) tokenOffset * ratio, mel.size(2) - (long) tokenOffset * ratio);
            if (rerun) {
                return rerunVocoder(plan, mel, tokensSoFar.length, t0, cancelled);
            }
            Tensor cacheSource = null;
            if (melCache != null) {
                mel = Tensors.cat(2, melCache, mel);
                cacheSource = sourceCache;
            }
            if (cancelled.getAsBoolean()) {
                throw new SynthesisJob.CancelledException();
            }
            long t1 = System.nanoTime();
            flowNanos = t1 - t0;
            Vocoder.Output out = vocoder.vocode(mel.contiguous(), random, cacheSource);
            float[] speech = Tensors.toFloats(out.wav());
            if (speechCache != null) {
                fadeIn(speech, speechCache);
            }
            vocoderNanos = System.nanoTime() - t1;
            float[] emitted;
            if (!plan.last()) {
                int keep = cfg.sourceCacheSamples();
                replaceCache(mel.narrow(2, mel.size(2) - cfg.melCacheFrames(), cfg.melCacheFrames()).contiguous(),
                        out.source().narrow(2, out.source().size(2) - keep, keep).contiguous());
                speechCache = Arrays.copyOfRange(speech, speech.length - keep, speech.length);
                emitted = Arrays.copyOf(speech, speech.length - keep);
                tokenOffset += plan.hop();
                hopLen = Math.min(cfg.maxTokenHopLen(), hopLen * cfg.hopScaleFactor());
            } else {
                emitted = speech;
                tokenOffset = tokensSoFar.length;
                finished = true;
                releaseCache();
            }
            hops++;
            return emitted;
        }
    }

    /**
     * The vocoder step of a pack whose vocoder re-runs over all the mel so far (streaming.vocoder_cache "rerun",
     * CosyVoice3Model.token2wav): the hop's new mel joins the segment's mel, the vocoder runs over all of it with
     * finalize only for the flush, and the samples past those already emitted are this hop's.
     */
    private float[] rerunVocoder(Hop plan, Tensor mel, int tokensSoFar, long t0, BooleanSupplier cancelled) {
        Tensor all = melCache == null ? mel : Tensors.cat(2, melCache, mel);
        if (cancelled.getAsBoolean()) {
            throw new SynthesisJob.CancelledException();
        }
        long t1 = System.nanoTime();
        flowNanos = t1 - t0;
        float[] speech = Tensors.toFloats(vocoder.vocodeStreaming(all.contiguous(), plan.last()));
        vocoderNanos = System.nanoTime() - t1;
        float[] emitted = Arrays.copyOfRange(speech, Math.min(speechOffset, speech.length), speech.length);
        speechOffset += emitted.length;
        if (!plan.last()) {
            Tensor keep = all.contiguous();
            keep.retainReference();
            releaseCache();
            melCache = keep;
            tokenOffset += plan.hop();
            hopLen = Math.min(cfg.maxTokenHopLen(), hopLen * cfg.hopScaleFactor());
        } else {
            tokenOffset = tokensSoFar;
            finished = true;
            releaseCache();
        }
        hops++;
        return emitted;
    }

    /** CosyVoice's fade_in_out: the first n samples become new * w[0..n) + previous tail * w[n..2n), in double. */
    private void fadeIn(float[] speech, float[] previous) {
        int n = previous.length;
        for (int i = 0; i < n && i < speech.length; i++) {
            speech[i] = (float) (speech[i] * window[i] + previous[i] * window[n + i]);
        }
    }

    private void replaceCache(Tensor mel, Tensor source) {
        releaseCache();
        mel.retainReference();
        source.retainReference();
        melCache = mel;
        sourceCache = source;
    }

    private void releaseCache() {
        if (melCache != null) {
            melCache.releaseReference();
            melCache = null;
        }
        if (sourceCache != null) {
            sourceCache.releaseReference();
            sourceCache = null;
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        releaseCache();
        speechCache = null;
    }
}
