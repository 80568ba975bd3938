package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * Speech-token generation with the pack's LLM as continuous batching: sequences {@link Batch#join join} a
 * running batch between decode steps (their own prefill, then their KV-cache rows are concatenated to the
 * batch's) and leave it when they stop, reach their length limit or are cancelled (their rows are dropped by
 * index_select at once). Rows are independent: a sequence's tokens do not depend on what it was batched with.
 * The KV cache is the only state that outlives a step: {@link Batch} owns it and frees it on close.
 */
public final class SpeechLm {
    private final ModelPack pack;

    public SpeechLm(ModelPack pack) {
        this.pack = pack;
    }

    /** One sequence to generate: prompt text ids + target text ids, the prompt's speech tokens, a sampler. */
    public record Input(long[] promptText, long[] text, long[] promptSpeech, Sampler sampler, int maxTokens) {
    }

    /** Generates the speech tokens of every input (same order), all in one batch; stop tokens are not included. */
    public List<int[]> generate(List<Input> inputs) {
        List<Row> rows = new ArrayList<>();
        for (Input in : inputs) {
            rows.add(row(in));
        }
        try (Batch batch = new Batch()) {
            batch.join(rows);
            while (!batch.isEmpty()) {
                batch.step(r -> false, r -> { });
            }
        }
        List<int[]> out = new ArrayList<>(rows.size());
        for (Row r : rows) {
            out.add(r.tokens());
        }
        return out;
    }

    Row row(Input input) {
        return new Row(input, pack.manifest);
    }

    /** One sequence's generation state (the scheduler maps rows to its segments; a row knows no owner). */
    static final class Row {
        final Input input;
        final int minLen;
        final int maxLen;
        final int capacity;        // cache slots the row needs: its prefill + every token it may add
        private final int[] tokens;
        private int count;
        private long position;     // where the row's next token goes in its cache row
        /** Test hook: once the row holds this many tokens, its next decode input is an id outside the vocabulary. */
        int corruptAt = -1;

        private final int[] silent;
        private final int maxSilentRun;

        private Row(Input in, PackManifest m) {
            PackManifest.Sampling s = m.sampling();
            this.silent = m.silentTokens();
            this.maxSilentRun = m.maxSilentRun();
            this.input = in;
            this.minLen = (int) (in.text().length * s.minTokenTextRatio());
            this.maxLen = Math.max(0, Math.min((int) (in.text().length * s.maxTokenTextRatio()), in.maxTokens()));
            this.tokens = new int[maxLen];
            this.capacity = in.promptText().length + in.text().length + in.promptSpeech().length + 2 + maxLen;
        }

        /** The tokens for the flow: every generated token, except that runs of silent tokens are cut (CosyVoice 3).
         * The sampler's history (repetition window) keeps all of them, as upstream's decoding loop does. */
        int[] tokens() {
            return dropLongSilences(Arrays.copyOf(tokens, count), silent, maxSilentRun);
        }

        int count() {
            return count;
        }
    }

    /** A running batch: its rows, their next-token log-probabilities, and the KV cache it owns. */
    final class Batch implements AutoCloseable {
        private final int vocab = pack.manifest.vocabSize();
        private final List<Row> rows = new ArrayList<>();   // row r of the cache belongs to rows.get(r)
        private float[] logp = new float[0];                  // [rows * vocab]
        private Tensor kCache;                                // [layers, rows, kv_heads, capacity, head_dim]
        private Tensor vCache;
        private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

        boolean isEmpty() {
            return rows.isEmpty();
        }

        int size() {
            return rows.size();
        }

        List<Row> rows() {
            return List.copyOf(rows);
        }

        /** Prefills the new rows (one call for all of them) and appends them to the batch. */
        void join(List<Row> fresh) {
            if (fresh.isEmpty()) {
                return;
            }
            int b = fresh.size();
            int lt = 1;
            int ls = 1;
            int cacheLen = 0;
            for (Row r : fresh) {
                lt = Math.max(lt, r.input.promptText().length + r.input.text().length);
                ls = Math.max(ls, r.input.promptSpeech().length);
                cacheLen = Math.max(cacheLen, r.capacity);
            }
            long[] text = new long[b * lt];
            long[] textLen = new long[b];
            long[] speech = new long[b * ls];
            long[] speechLen = new long[b];
            for (int i = 0; i < b; i++) {
                Input in = fresh.get(i).input;
                System.arraycopy(in.promptText(), 0, text, i * lt, in.promptText().length);
                System.arraycopy(in.text(), 0, text, i * lt + in.promptText().length, in.text().length);
                textLen[i] = in.promptText().length + in.text().length;
                System.arraycopy(in.promptSpeech(), 0, speech, i * ls, in.promptSpeech().length);
                speechLen[i] = in.promptSpeech().length;
            }
            try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                var dev = pack.device;
                IValue out = Tensors.call(pack.prefill,
                        Tensors.on(Tensors.longs(text, b, lt), dev), Tensors.on(Tensors.longs(textLen, b), dev),
                        Tensors.on(Tensors.longs(speech, b, ls), dev), Tensors.on(Tensors.longs(speechLen, b), dev),
                        (long) cacheLen);
                float[] freshLogp = Tensors.toFloats(Tensors.element(out, 0));
                Tensor k = Tensors.element(out, 1);
                Tensor v = Tensors.element(out, 2);
                long[] positions = Tensors.toLongs(Tensors.element(out, 3));
                for (int i = 0; i < b; i++) {
                    fresh.get(i).position = positions[i];
                }
                if (kCache == null) {
                    replaceCache(k, v);
                } else {
                    long capacity = Math.max(kCache.size(3), k.size(3));
                    replaceCache(Tensors.cat(1, padTime(kCache, capacity), padTime(k, capacity)),
                            Tensors.cat(1, padTime(vCache, capacity), padTime(v, capacity)));
                }
                float[] joined = Arrays.copyOf(logp, logp.length + freshLogp.length);
                System.arraycopy(freshLogp, 0, joined, logp.length, freshLogp.length);
                logp = joined;
                rows.addAll(fresh);
            }
        }

        /** Zero slots appended to the time dimension (3) up to {@code capacity}; padding is never attended to. */
        private Tensor padTime(Tensor cache, long capacity) {
            long have = cache.size(3);
            if (have == capacity) {
                return cache;
            }
            long[] shape = {cache.size(0), cache.size(1), cache.size(2), capacity - have, cache.size(4)};
            return Tensors.cat(3, cache, torch.zeros(shape, cache.options()));
        }

        /**
         * Samples one token for every row; rows that stop, reach their limit, or are {@code cancelled} leave
         * (their cache rows are dropped), the rest run one decode. {@code done} gets each row that completed in
         * this step (not the cancelled ones) before the decode runs.
         */
        void step(Predicate<Row> cancelled, Consumer<Row> done) {
            step(cancelled, done, (row, e) -> {
                throw e;
            });
        }

        /**
         * As {@link #step(Predicate, Consumer)}; when the shared decode fails, each row is decoded again alone
         * (on views of its own cache row, so the in-place cache writes land where the shared decode puts them),
         * rows that fail alone leave the batch through {@code failed} and the others go on with exactly the
         * output they would have had. If every row fails alone too, the shared step's error is thrown: that is
         * the engine, not a row.
         */
        void step(Predicate<Row> cancelled, Consumer<Row> done, BiConsumer<Row, RuntimeException> failed) {
            int n = rows.size();
            long[] next = new long[n];
            boolean[] keep = new boolean[n];
            int kept = 0;
            for (int r = 0; r < n; r++) {
                Row row = rows.get(r);
                if (cancelled.test(row)) {
                    continue;
                }
                if (row.count >= row.maxLen) {
                    done.accept(row);
                    continue;
                }
                int id = row.input.sampler().next(logp, r * vocab, vocab, row.tokens, row.count, row.count < row.minLen);
                if (isStop(id)) {
                    done.accept(row);   // a stop token (Qwen2LM.stop_token_ids): the sequence is complete
                    continue;
                }
                row.tokens[row.count++] = id;
                if (row.count < row.maxLen) {
                    keep[r] = true;
                    next[r] = id;
                    kept++;
                } else {
                    done.accept(row);
                }
            }
            if (kept == 0) {
                reset();
                return;
            }
            try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                if (kept < n) {
                    compact(keep, kept);
                }
                long[] ids = new long[kept];
                long[] pos = new long[kept];
                for (int r = 0, j = 0; r < n; r++) {
                    if (keep[r]) {
                        Row row = rows.get(j);
                        ids[j] = row.count == row.corruptAt ? vocab + 1000 : next[r];
                        pos[j] = row.position;
                        j++;
                    }
                }
                try {
                    logp = decode(ids, pos, kCache, vCache);
                } catch (RuntimeException e) {
                    isolate(ids, pos, e, failed);
                }
                for (Row row : rows) {
                    row.position++;
                }
            }
        }

        private float[] decode(long[] ids, long[] pos, Tensor k, Tensor v) {
            int b = ids.length;
            Tensor out = Tensors.tensor(Tensors.call(pack.decode, Tensors.on(Tensors.longs(ids, b), pack.device),
                    k, v, Tensors.on(Tensors.longs(pos, b), pack.device)));
            return Tensors.toFloats(out);
        }

        /**
         * The shared decode failed (inside a step's scope): each row runs alone on views of its cache row; the rows
         * that fail alone are dropped and reported, the rest keep their own output. A decode writes each row's
         * k/v at that row's position only, so running it again writes the same values to the same slots.
         */
        private void isolate(long[] ids, long[] pos, RuntimeException shared, BiConsumer<Row, RuntimeException> failed) {
            int n = rows.size();
            float[][] alone = new float[n][];
            RuntimeException[] errors = new RuntimeException[n];
            int ok = 0;
            for (int j = 0; j < n; j++) {
                try {
                    alone[j] = decode(new long[] {ids[j]}, new long[] {pos[j]}, kCache.narrow(1, j, 1), vCache.narrow(1, j, 1));
                    ok++;
                } catch (RuntimeException e) {
                    errors[j] = e;
                }
            }
            if (ok == 0) {
                throw shared;
            }
            boolean[] keep = new boolean[n];
            float[] joined = new float[ok * vocab];
            List<Row> before = List.copyOf(rows);
            for (int j = 0, o = 0; j < n; j++) {
                if (alone[j] != null) {
                    keep[j] = true;
                    System.arraycopy(alone[j], 0, joined, o++ * vocab, vocab);
                }
            }
            if (ok < n) {
                compact(keep, ok);
            }
            logp = joined;
            for (int j = 0; j < n; j++) {
                if (errors[j] != null) {
                    failed.accept(before.get(j), errors[j]);
                }
            }
        }

        /**
         * Keeps only the rows still generating (called inside a step's scope); the time dimension shrinks to
         * what they still need, so a long sequence that left does not keep its slots.
         */
        private void compact(boolean[] keep, int kept) {
            long[] index = new long[kept];
            List<Row> still = new ArrayList<>(kept);
            int capacity = 0;
            for (int r = 0, j = 0; r < keep.length; r++) {
                if (keep[r]) {
                    index[j++] = r;
                    still.add(rows.get(r));
                    capacity = Math.max(capacity, rows.get(r).capacity);
                }
            }
            long slots = Math.min(capacity, kCache.size(3));
            Tensor select = Tensors.on(Tensors.longs(index, kept), pack.device);
            replaceCache(kCache.narrow(3, 0, slots).index_select(1, select), vCache.narrow(3, 0, slots).index_select(1, select));
            rows.clear();
            rows.addAll(still);
        }

        /** Takes ownership of new cache tensors (they outlive the scope they were made in) and frees the old. */
        private void replaceCache(Tensor k, Tensor v) {
            k.retainReference();
            v.retainReference();
            releaseCache();
            kCache = k;
            vCache = v;
        }

        /** Empties the batch for reuse: no rows, the KV cache freed. */
        void reset() {
            rows.clear();
            logp = new float[0];
            releaseCache();
        }

        /** Frees the KV cache; the batch is not used after this. Idempotent. */
        @Override
        public void close() {
            if (closed.compareAndSet(false, true)) {
                reset();
            }
        }

        private void releaseCache() {
            if (kCache != null) {
                kCache.releaseReference();
                vCache.releaseReference();
                kCache = null;
                vCache = null;
            }
        }
    }

    /**
     * CosyVoice3Model.llm_job (cosyvoice/cli/model.py): a token in {@code silent} is kept while it is at most the
     * {@code maxRun}-th of an unbroken run of silent tokens and dropped after that; any other token resets the run.
     * With no silent tokens (CosyVoice 2 packs) the sequence is returned as it is.
     */
    static int[] dropLongSilences(int[] tokens, int[] silent, int maxRun) {
        if (silent.length == 0) {
            return tokens;
        }
        int[] out = new int[tokens.length];
        int n = 0;
        int run = 0;
        for (int t : tokens) {
            boolean isSilent = false;
            for (int s : silent) {
                if (t == s) {
                    isSilent = true;
                    break;
                }
            }
            if (isSilent) {
                run++;
                if (run > maxRun) {
                    continue;
                }
            } else {
                run = 0;
            }
            out[n++] = t;
        }
        return n == tokens.length ? tokens : Arrays.copyOf(out, n);
    }

    /** The pack's stop ids (pack.json llm.stop_tokens): Qwen2LM's 6561-6563, CosyVoice3LM's 6561-6760 (all 200
     * reserved ids, as its stop_token_ids); any id outside the speech tokens ends a sequence too. */
    private boolean isStop(int id) {
        for (int stop : pack.manifest.stopTokens()) {
            if (id == stop) {
                return true;
            }
        }
        return id >= pack.manifest.speechTokenSize();   // any id outside the speech tokens (a bigger vocabulary)
    }
}
