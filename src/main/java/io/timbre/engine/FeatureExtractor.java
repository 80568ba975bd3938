package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Audio + transcript -> {@link SpeakerFeatures} through the pack's frontend, as CosyVoice's
 * frontend_zero_shot does for add_zero_shot_spk. Tensors of the computation live in one scope.
 */
public final class FeatureExtractor {
    private final ModelPack pack;
    private final TextTokenizer tokenizer;
    private final AtomicLong extractions = new AtomicLong();

    public FeatureExtractor(ModelPack pack, TextTokenizer tokenizer) {
        this.pack = pack;
        this.tokenizer = tokenizer;
    }

    /** @param wav16k mono samples in [-1, 1] at the pack's prompt rate (16 kHz) */
    public SpeakerFeatures extract(float[] wav16k, String promptText) {
        PackManifest m = pack.manifest;
        double seconds = wav16k.length / (double) m.promptSampleRate();
        if (seconds > m.maxPromptSeconds() + 1e-9) {
            throw new IllegalArgumentException("prompt audio is " + seconds + " s, longer than " + m.maxPromptSeconds() + " s");
        }
        extractions.incrementAndGet();
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            Tensor wav = Tensors.on(Tensors.floats(wav16k, 1, wav16k.length), pack.device);
            Tensor tokens = Tensors.tensor(Tensors.call(pack.speechTokens, wav));
            Tensor wav24k = Tensors.tensor(Tensors.call(pack.resample, wav, (long) m.promptSampleRate(), (long) m.outputSampleRate()));
            Tensor feat = Tensors.tensor(Tensors.call(pack.speechFeat, wav24k));
            // CosyVoice 2 forces exactly two mel frames per speech token.
            long tokenLen = Math.min(feat.size(1) / 2, tokens.size(1));
            if (tokenLen < 1) {
                throw new IllegalArgumentException("prompt audio is too short to yield any speech token");
            }
            feat = feat.narrow(1, 0, 2 * tokenLen).contiguous();
            tokens = tokens.narrow(1, 0, tokenLen).contiguous();
            Tensor embedding = Tensors.tensor(Tensors.call(pack.speakerEmbedding, wav));
            long[] ids = tokenizer.encode(promptText);
            int[] ints = new int[ids.length];
            for (int i = 0; i < ids.length; i++) {
                ints[i] = Math.toIntExact(ids[i]);
            }
            Tensor text = Tensors.on(Tensors.ints(ints, 1, ints.length), pack.device);
            return new SpeakerFeatures(text, tokens, feat, embedding);
        }
    }

    /** Resamples mono audio with the pack's resampler (torchaudio's sinc interpolation). */
    public float[] resample(float[] wav, int from, int to) {
        if (from == to) {
            return wav;
        }
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            Tensor w = Tensors.floats(wav, 1, wav.length);
            return Tensors.toFloats(Tensors.tensor(Tensors.call(pack.resample, w, (long) from, (long) to)));
        }
    }

    /** How many times features were computed (tests count these to prove the cache path skips them). */
    public long extractions() {
        return extractions.get();
    }
}
