package io.timbre.engine;

import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Mel -> waveform with the pack's HiFT vocoder ({@code hift.pt} method {@code vocode}). The vocoder's random draws
 * (SineGen's initial phases and noise) come from the caller's {@link RandomSource}, never from LibTorch's global
 * generator, in CosyVoice's order and amount: uniform [1, H] phases, normal [1, H, samples] noise (filled in its transpose's order, as CosyVoice's
 * {@code randn_like} of transposed sines), then the
 * normal [1, samples, 1] that CosyVoice's source module draws and discards (drawn here too, so one generator used
 * for several calls stays in step with CosyVoice's). Call inside the caller's PointerScope and InferenceMode.
 */
public final class Vocoder {
    private final ModelPack pack;

    public Vocoder(ModelPack pack) {
        this.pack = pack;
    }

    /** What one call gives: the waveform [1, F * 480] and the NSF source [1, 1, F * 480] (for the next hop's cache). */
    public record Output(Tensor wav, Tensor source) {
    }

    /** @param mel [1, 80, F] @return F * 480 samples at the pack's output rate */
    public float[] vocode(Tensor mel, RandomSource random) {
        return Tensors.toFloats(vocode(mel, random, null).wav());
    }

    /**
     * One vocoder call. {@code cacheSource} [1, 1, S] (null: none) replaces the first S samples of the NSF source,
     * as CosyVoice's HiFT cache does for a streamed hop.
     */
    public Output vocode(Tensor mel, RandomSource random, Tensor cacheSource) {
        var dev = pack.device;
        long batch = mel.size(0);
        long samples = mel.size(2) * pack.manifest.samplesPerMelFrame();
        long h = pack.manifest.sourceHarmonics();
        Tensor phase;
        Tensor noise;
        if (h == 0) {            // a causal vocoder (CosyVoice 3): fixed source buffers, nothing drawn
            phase = torch.zeros(new long[]{batch, 0}, mel.options());
            noise = torch.zeros(new long[]{batch, 0, 0}, mel.options());
        } else {
            phase = Tensors.on(random.uniform(batch, h), dev);
            noise = Tensors.on(random.normalTransposed(batch, h, samples), dev);   // CosyVoice's randn_like order
            random.normal(batch, samples, 1);                           // CosyVoice's discarded draw
        }
        Tensor cache = cacheSource != null ? cacheSource : torch.zeros(new long[]{batch, 1, 0}, mel.options());
        IValue out = Tensors.call(pack.vocode, mel, phase, noise, cache);
        return new Output(Tensors.element(out, 0), Tensors.element(out, 1));
    }

    /**
     * One streamed call of a vocoder that re-runs over all the mel so far ({@code vocode_streaming}, pack.json
     * streaming.vocoder_cache "rerun": CausalHiFTGenerator.inference(speech_feat, finalize)). It draws nothing.
     * finalize=false holds back the vocoder's look-ahead: fewer samples than {@code F * samples_per_mel_frame}.
     *
     * @param mel [1, 80, F], all the mel of the segment so far
     * @return the waveform [1, S]
     */
    public Tensor vocodeStreaming(Tensor mel, boolean finalize) {
        if (pack.vocodeStreaming == null) {
            throw new PackException("model pack " + pack.key() + " has no vocoder.vocode_streaming: re-export it");
        }
        return Tensors.element(Tensors.call(pack.vocodeStreaming, mel, finalize), 0);
    }

    /**
     * For callers that own no generator yet: a fresh {@code RandomSource(0)} per call, so the output is repeatable
     * and independent of other threads. Request-level callers pass their own {@link RandomSource}.
     */
    public float[] vocode(Tensor mel) {
        try (RandomSource random = new RandomSource(0)) {
            return vocode(mel, random);
        }
    }
}
