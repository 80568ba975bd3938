package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Speech-token generation with the pack's LLM: one batched prefill over all sequences, then batched decode
 * steps; a sequence leaves the batch when it stops, and its rows of the KV cache are dropped. The KV cache
 * is the only state that outlives a step: {@link Batch} owns it and frees it on close.
 */
public final class SpeechLm {
    private final ModelPack pack;

    public SpeechLm(ModelPack pack) {
        this.pack = pack;
    }

    /** One sequence to generate: prompt text ids + target text ids, the prompt's speech tokens, a sampler. */
    public record Input(long[] promptText, long[] text, long[] promptSpeech, Sampler sampler, int maxTokens) {
    }

    /** Generates the speech tokens of every input (same order); stop tokens are not included. */
    public List<int[]> generate(List<Input> inputs) {
        try (Batch batch = new Batch(inputs)) {
            while (batch.step()) {
                // each step runs in its own scope inside step()
            }
            return batch.results();
        }
    }

    final class Batch implements AutoCloseable {
        private final List<Input> inputs;
        private final int vocab = pack.manifest.vocabSize();
        private final int[][] tokens;
        private final int[] counts;
        private final int[] minLen;
        private final int[] maxLen;
        private int[] active;          // input index of each row of the cache
        private long[] positions;      // where each row's next token goes
        private float[] logp;          // [rows * vocab] log-probabilities of the next token
        private Tensor kCache;
        private Tensor vCache;

        Batch(List<Input> inputs) {
            this.inputs = inputs;
            int b = inputs.size();
            tokens = new int[b][];
            counts = new int[b];
            minLen = new int[b];
            maxLen = new int[b];
            PackManifest.Sampling s = pack.manifest.sampling();
            int lt = 0;
            int ls = 0;
            int cacheLen = 0;
            for (int i = 0; i < b; i++) {
                Input in = inputs.get(i);
                minLen[i] = (int) (in.text().length * s.minTokenTextRatio());
                maxLen[i] = Math.min((int) (in.text().length * s.maxTokenTextRatio()), in.maxTokens());
                tokens[i] = new int[Math.max(maxLen[i], 0)];
                int textLen = in.promptText().length + in.text().length;
                lt = Math.max(lt, textLen);
                ls = Math.max(ls, in.promptSpeech().length);
                cacheLen = Math.max(cacheLen, textLen + in.promptSpeech().length + 2 + maxLen[i]);
            }
            long[] text = new long[b * lt];
            long[] textLen = new long[b];
            long[] speech = new long[b * Math.max(ls, 1)];
            long[] speechLen = new long[b];
            for (int i = 0; i < b; i++) {
                Input in = inputs.get(i);
                System.arraycopy(in.promptText(), 0, text, i * lt, in.promptText().length);
                System.arraycopy(in.text(), 0, text, i * lt + in.promptText().length, in.text().length);
                textLen[i] = in.promptText().length + in.text().length;
                System.arraycopy(in.promptSpeech(), 0, speech, i * Math.max(ls, 1), in.promptSpeech().length);
                speechLen[i] = in.promptSpeech().length;
            }
            try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                var dev = pack.device;
                IValue out = Tensors.call(pack.prefill,
                        Tensors.on(Tensors.longs(text, b, lt), dev), Tensors.on(Tensors.longs(textLen, b), dev),
                        Tensors.on(Tensors.longs(speech, b, Math.max(ls, 1)), dev), Tensors.on(Tensors.longs(speechLen, b), dev),
                        (long) cacheLen);
                logp = Tensors.toFloats(Tensors.element(out, 0));
                kCache = own(Tensors.element(out, 1));
                vCache = own(Tensors.element(out, 2));
                positions = Tensors.toLongs(Tensors.element(out, 3));
            }
            active = new int[b];
            for (int i = 0; i < b; i++) {
                active[i] = i;
            }
        }

        /** Samples one token for every active row, drops finished rows, runs one decode. False when all are done. */
        boolean step() {
            int rows = active.length;
            long[] next = new long[rows];
            boolean[] keep = new boolean[rows];
            int kept = 0;
            for (int r = 0; r < rows; r++) {
                int i = active[r];
                if (counts[i] >= maxLen[i]) {
                    continue;
                }
                int id = inputs.get(i).sampler().next(logp, r * vocab, vocab, tokens[i], counts[i], counts[i] < minLen[i]);
                if (id >= pack.manifest.speechTokenSize()) {
                    continue;   // a stop token: the sequence is complete
                }
                tokens[i][counts[i]++] = id;
                if (counts[i] < maxLen[i]) {
                    keep[r] = true;
                    next[r] = id;
                    kept++;
                }
            }
            if (kept == 0) {
                return false;
            }
            try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                if (kept < rows) {
                    compact(keep, kept);
                }
                long[] ids = new long[kept];
                long[] pos = new long[kept];
                int[] stillActive = new int[kept];
                for (int r = 0, j = 0; r < rows; r++) {
                    if (keep[r]) {
                        ids[j] = next[r];
                        pos[j] = positions[r];
                        stillActive[j] = active[r];
                        j++;
                    }
                }
                active = stillActive;
                Tensor out = Tensors.tensor(Tensors.call(pack.decode, Tensors.on(Tensors.longs(ids, kept), pack.device),
                        kCache, vCache, Tensors.on(Tensors.longs(pos, kept), pack.device)));
                logp = Tensors.toFloats(out);
                for (int j = 0; j < kept; j++) {
                    pos[j]++;
                }
                positions = pos;
            }
            return true;
        }

        /** Keeps only the cache rows of sequences still generating (called inside a step's scope). */
        private void compact(boolean[] keep, int kept) {
            long[] rows = new long[kept];
            for (int r = 0, j = 0; r < keep.length; r++) {
                if (keep[r]) {
                    rows[j++] = r;
                }
            }
            Tensor index = Tensors.on(Tensors.longs(rows, kept), pack.device);
            Tensor k = own(kCache.index_select(1, index));
            Tensor v = own(vCache.index_select(1, index));
            kCache.releaseReference();
            vCache.releaseReference();
            kCache = k;
            vCache = v;
        }

        private Tensor own(Tensor t) {
            t.retainReference();   // outlives the scope it was made in; released by compact() or close()
            return t;
        }

        List<int[]> results() {
            List<int[]> out = new ArrayList<>(tokens.length);
            for (int i = 0; i < tokens.length; i++) {
                out.add(Arrays.copyOf(tokens[i], counts[i]));
            }
            return out;
        }

        @Override
        public void close() {
            if (kCache != null) {
                kCache.releaseReference();
                vCache.releaseReference();
                kCache = null;
                vCache = null;
            }
        }
    }
}
