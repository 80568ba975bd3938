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

    /**
     * Features of a prompt recording at its own sample rate, as CosyVoice's frontend_zero_shot computes them since
     * upstream commit 622a3a1 (prompt passed as a file, each feature loading it with load_wav): the 16 kHz audio
     * for the speech tokens and the speaker embedding and the 24 kHz audio for the prompt mel are each resampled
     * straight from the original. (Going 48 kHz -> 16 kHz -> 24 kHz instead empties the 8-12 kHz band that mel
     * bins 76-79 cover; models/README.md §13 has the numbers.)
     *
     * @param samples    mono samples in [-1, 1]
     * @param sampleRate their rate (upstream asserts >= 16 kHz; lower rates are resampled up here)
     */
    public SpeakerFeatures extract(float[] samples, int sampleRate, String promptText) {
        PackManifest m = pack.manifest;
        if (sampleRate <= 0) {
            throw new IllegalArgumentException("sample rate " + sampleRate);
        }
        double seconds = samples.length / (double) sampleRate;
        if (seconds > m.maxPromptSeconds() + 1e-9) {
            throw new IllegalArgumentException("prompt audio is " + seconds + " s, longer than " + m.maxPromptSeconds() + " s");
        }
        extractions.incrementAndGet();
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            Tensor wav = Tensors.on(Tensors.floats(samples, 1, samples.length), pack.device);
            Tensor wav16k = sampleRate == m.promptSampleRate() ? wav
                    : Tensors.tensor(Tensors.call(pack.resample, wav, (long) sampleRate, (long) m.promptSampleRate()));
            Tensor wav24k = sampleRate == m.outputSampleRate() ? wav
                    : Tensors.tensor(Tensors.call(pack.resample, wav, (long) sampleRate, (long) m.outputSampleRate()));
            // speech_tokenizer_v2.onnx on the 128-bin Whisper log-mel [1, 128, T]
            Tensor logMel = Tensors.cpuContiguous(Tensors.tensor(Tensors.call(pack.whisperLogMel, wav16k)));
            int[] ids = pack.onnx.speechTokens(Tensors.floatBuffer(logMel), logMel.size(2));
            Tensor feat = Tensors.tensor(Tensors.call(pack.speechFeat, wav24k));
            // CosyVoice 2 forces exactly two mel frames per speech token.
            long tokenLen = Math.min(feat.size(1) / 2, ids.length);
            if (tokenLen < 1) {
                throw new IllegalArgumentException("prompt audio is too short to yield any speech token");
            }
            feat = feat.narrow(1, 0, 2 * tokenLen).contiguous();
            Tensor tokens = Tensors.on(Tensors.ints(java.util.Arrays.copyOf(ids, (int) tokenLen), 1, tokenLen), pack.device);
            // campplus.onnx on the mean-removed Kaldi fbank [1, T, 80]
            Tensor fbank = Tensors.cpuContiguous(Tensors.tensor(Tensors.call(pack.kaldiFbank, wav16k)));
            float[] emb = pack.onnx.speakerEmbedding(Tensors.floatBuffer(fbank), fbank.size(1));
            Tensor embedding = Tensors.on(Tensors.floats(emb, 1, emb.length), pack.device);
            long[] textIds = tokenizer.encode(promptText);
            int[] ints = new int[textIds.length];
            for (int i = 0; i < textIds.length; i++) {
                ints[i] = Math.toIntExact(textIds[i]);
            }
            Tensor text = Tensors.on(Tensors.ints(ints, 1, ints.length), pack.device);
            return new SpeakerFeatures(text, tokens, feat, embedding);
        }
    }

    /** How many times features were computed (tests count these to prove the cache path skips them). */
    public long extractions() {
        return extractions.get();
    }
}
