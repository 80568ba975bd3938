package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One speaker's precomputed features: CosyVoice's spk2info entry. Owns its four tensors (the llm_ and flow_
 * keys share them, as in CosyVoice) and frees them on {@link #close()}; until then they outlive any scope.
 */
public final class SpeakerFeatures implements AutoCloseable {
    /** The keys of a CosyVoice 2 zero-shot spk2info entry, in CosyVoice's order. */
    public static final List<String> KEYS = List.of("prompt_text", "prompt_text_len", "llm_prompt_speech_token",
            "llm_prompt_speech_token_len", "flow_prompt_speech_token", "flow_prompt_speech_token_len",
            "prompt_speech_feat", "prompt_speech_feat_len", "llm_embedding", "flow_embedding");

    private final Tensor promptText;     // int32 [1, L]
    private final Tensor speechTokens;   // int32 [1, N]
    private final Tensor speechFeat;     // float [1, 2N, 80]
    private final Tensor embedding;      // float [1, 192]
    private final long bytes;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    /** Takes its own references to the given tensors (the caller's scope may free its handles). */
    public SpeakerFeatures(Tensor promptText, Tensor speechTokens, Tensor speechFeat, Tensor embedding) {
        this.promptText = keep(promptText);
        this.speechTokens = keep(speechTokens);
        this.speechFeat = keep(speechFeat);
        this.embedding = keep(embedding);
        this.bytes = Tensors.bytes(promptText) + Tensors.bytes(speechTokens) + Tensors.bytes(speechFeat) + Tensors.bytes(embedding);
    }

    private static Tensor keep(Tensor t) {
        try (PointerScope scope = new PointerScope()) {
            Tensor own = new Tensor(t);     // a new handle: one more reference to the same storage
            own.retainReference();          // survives this scope and the caller's; released in close()
            return own;
        }
    }

    public Tensor promptText() {
        return check(promptText);
    }

    public Tensor speechTokens() {
        return check(speechTokens);
    }

    public Tensor speechFeat() {
        return check(speechFeat);
    }

    public Tensor embedding() {
        return check(embedding);
    }

    public int tokenLength() {
        return (int) speechTokens.size(1);
    }

    public int featFrames() {
        return (int) speechFeat.size(1);
    }

    /** Native bytes held by the tensors (what an in-memory cache accounts for). */
    public long nativeBytes() {
        return bytes;
    }

    private Tensor check(Tensor t) {
        if (closed.get()) {
            throw new IllegalStateException("speaker features already closed");
        }
        return t;
    }

    /** The feature file: a torch.save'd dict of the ten spk2info keys, written in Java ({@link TorchSave#write}). */
    public byte[] toFeatureFile() {
        return data().toFeatureFile();
    }

    /** The values as Java arrays (copied from the tensors). */
    public Data data() {
        try (PointerScope scope = new PointerScope()) {
            return new Data(Tensors.toInts(promptText()), Tensors.toInts(speechTokens()), Tensors.toFloats(speechFeat()),
                    Tensors.toFloats(embedding()));
        }
    }

    /** Reads a feature file written by {@link #toFeatureFile()} or by Python's torch.save of an spk2info entry. */
    public static SpeakerFeatures fromFeatureFile(byte[] file, FeatureSchema schema, Device device) {
        return readFeatureFile(file, schema, TorchSave.Limits.of(MAX_FEATURE_FILE_BYTES)).toFeatures(device);
    }

    /** The largest feature file the service writes itself (a 30 s prompt's features are about 0.5 MB). */
    public static final long MAX_FEATURE_FILE_BYTES = 16L << 20;

    /** Reads and validates one spk2info entry file; no native code runs. */
    public static Data readFeatureFile(byte[] file, FeatureSchema schema, TorchSave.Limits limits) {
        Object root = TorchSave.read(file, limits);
        if (!(root instanceof Map<?, ?> d)) {
            throw new FeatureFileException("the feature file does not hold a dict of spk2info tensors");
        }
        return Data.validate(d, schema, new Aliasing(), "");
    }

    /**
     * Reads and validates a CosyVoice spk2info.pt (speaker id -> entry) without running native code; at most
     * {@code maxEntries} entries (checked before any entry is copied). A single entry's file (what the feature
     * export gives) is accepted too, as one speaker named {@code singleName}.
     */
    public static Map<String, Data> readSpk2info(byte[] file, FeatureSchema schema, TorchSave.Limits limits, int maxEntries,
                                                 String singleName) {
        Object root = TorchSave.read(file, limits);
        if (!(root instanceof Map<?, ?> d)) {
            throw new FeatureFileException("spk2info.pt must hold a dict: speaker id -> dict of feature tensors");
        }
        if (d.get("prompt_text") instanceof TorchSave.TensorRef) {
            Map<String, Data> one = new LinkedHashMap<>();
            one.put(singleName, Data.validate(d, schema, new Aliasing(), ""));
            return one;
        }
        if (d.size() > maxEntries) {
            throw new FeatureFileException("spk2info.pt holds " + d.size() + " speakers; one import may hold at most "
                    + maxEntries + " (limit timbre.limits.import-entries)", true);
        }
        Map<String, Data> out = new LinkedHashMap<>();
        Aliasing aliasing = new Aliasing();
        java.util.IdentityHashMap<Object, String> seen = new java.util.IdentityHashMap<>();
        for (Map.Entry<?, ?> e : d.entrySet()) {
            String id = (String) e.getKey();
            if (!(e.getValue() instanceof Map<?, ?> entry)) {
                throw new FeatureFileException("spk2info.pt entry '" + id + "' is not a dict of tensors");
            }
            String first = seen.putIfAbsent(entry, id);
            if (first != null) {
                throw new FeatureFileException("spk2info.pt entry '" + id + "' is the same object as entry '" + first
                        + "'; each speaker must have its own features");
            }
            out.put(id, Data.validate(entry, schema, aliasing, "entry '" + id + "': "));
        }
        return out;
    }

    /** Which storage each tensor slot uses: one storage serves one slot (the llm_/flow_ twins are one slot). */
    static final class Aliasing {
        private final Map<TorchSave.Storage, String> owner = new java.util.IdentityHashMap<>();

        void claim(TorchSave.Storage s, String slot, String where, String key) {
            String first = owner.putIfAbsent(s, slot);
            if (first != null && !first.equals(slot)) {
                throw new FeatureFileException(where + "key '" + key + "' shares its storage with " + first
                        + "; every tensor must have its own data");
            }
        }
    }

    /**
     * One speaker's features as validated Java arrays: prompt text ids, speech tokens, the mel (frames x 80,
     * row-major) and the embedding. Building tensors from it is the only way a file's values reach LibTorch.
     */
    public record Data(int[] promptText, int[] speechTokens, float[] speechFeat, float[] embedding) {
        public int frames() {
            return speechFeat.length / FeatureSchema.MEL_BINS;
        }

        /** Bytes the tensors will hold (what quotas count). */
        public long bytes() {
            return 4L * (promptText.length + speechTokens.length + speechFeat.length + embedding.length);
        }

        /** Tensors on {@code device}, owned by the returned features. */
        public SpeakerFeatures toFeatures(Device device) {
            NativeTorch.ensureLoaded();
            try (PointerScope scope = new PointerScope()) {
                return new SpeakerFeatures(
                        Tensors.on(Tensors.ints(promptText, 1, promptText.length), device),
                        Tensors.on(Tensors.ints(speechTokens, 1, speechTokens.length), device),
                        Tensors.on(Tensors.floats(speechFeat, 1, frames(), FeatureSchema.MEL_BINS), device),
                        Tensors.on(Tensors.floats(embedding, 1, embedding.length), device));
            }
        }

        /** The ten keys of CosyVoice's add_zero_shot_spk, llm_ and flow_ twins sharing one tensor as there. */
        public byte[] toFeatureFile() {
            LinkedHashMap<String, TorchSave.Array> d = new LinkedHashMap<>();
            TorchSave.Array tokens = TorchSave.Array.ofInts(speechTokens, 1, speechTokens.length);
            TorchSave.Array tokensLen = TorchSave.Array.ofInts(new int[]{speechTokens.length}, 1);
            TorchSave.Array emb = TorchSave.Array.ofFloats(embedding, 1, embedding.length);
            d.put("prompt_text", TorchSave.Array.ofInts(promptText, 1, promptText.length));
            d.put("prompt_text_len", TorchSave.Array.ofInts(new int[]{promptText.length}, 1));
            d.put("llm_prompt_speech_token", tokens);
            d.put("llm_prompt_speech_token_len", tokensLen);
            d.put("flow_prompt_speech_token", tokens);
            d.put("flow_prompt_speech_token_len", tokensLen);
            d.put("prompt_speech_feat", TorchSave.Array.ofFloats(speechFeat, 1, frames(), FeatureSchema.MEL_BINS));
            d.put("prompt_speech_feat_len", TorchSave.Array.ofInts(new int[]{frames()}, 1));
            d.put("llm_embedding", emb);
            d.put("flow_embedding", emb);
            return TorchSave.write("features", d);
        }

        static Data validate(Map<?, ?> d, FeatureSchema schema, Aliasing aliasing, String where) {
            for (Object k : d.keySet()) {
                if (!KEYS.contains(k)) {
                    throw new FeatureFileException(where + "key '" + k + "' is not one of CosyVoice 2's spk2info keys ("
                            + String.join(", ", KEYS) + ")");
                }
            }
            java.util.IdentityHashMap<Object, String> tensorSlot = new java.util.IdentityHashMap<>();
            for (String key : KEYS) {
                Object v = d.get(key);
                if (v == null) {
                    throw new FeatureFileException(where + "key '" + key + "' is missing (a CosyVoice 2 zero-shot spk2info entry has "
                            + String.join(", ", KEYS) + ")");
                }
                if (!(v instanceof TorchSave.TensorRef t)) {
                    throw new FeatureFileException(where + "key '" + key + "' is not a tensor");
                }
                String slot = slot(key);
                String other = tensorSlot.putIfAbsent(t, slot);
                if (other != null && !other.equals(slot)) {
                    throw new FeatureFileException(where + "key '" + key + "' is the same tensor as key '" + other + "'");
                }
                String problem = t.layoutProblem();
                if (problem != null) {
                    throw new FeatureFileException(where + "key '" + key + "' " + problem);
                }
                aliasing.claim(t.storage, where + "key '" + slot + "'", where, key);
            }
            int[] text = ids(d, "prompt_text", where, schema.maxTextTokens(), schema.textVocab(), "text vocabulary");
            int[] tokens = ids(d, "llm_prompt_speech_token", where, schema.maxSpeechTokens(), schema.speechTokenSize(), "speech tokens");
            if (!java.util.Arrays.equals(tokens, ids(d, "flow_prompt_speech_token", where, schema.maxSpeechTokens(),
                    schema.speechTokenSize(), "speech tokens"))) {
                throw new FeatureFileException(where + "'flow_prompt_speech_token' differs from 'llm_prompt_speech_token' (CosyVoice stores one tensor)");
            }
            if (text.length == 0 || tokens.length == 0) {
                throw new FeatureFileException(where + "'prompt_text' and 'llm_prompt_speech_token' must not be empty");
            }
            length(d, "prompt_text_len", text.length, where);
            length(d, "llm_prompt_speech_token_len", tokens.length, where);
            length(d, "flow_prompt_speech_token_len", tokens.length, where);
            TorchSave.TensorRef feat = tensor(d, "prompt_speech_feat", TorchSave.DType.FLOAT, where);
            if (feat.shape.length != 3 || feat.shape[0] != 1 || feat.shape[1] != 2L * tokens.length || feat.shape[2] != FeatureSchema.MEL_BINS) {
                throw new FeatureFileException(where + "'prompt_speech_feat' has shape " + feat.shapeText() + "; expected [1, "
                        + 2 * tokens.length + ", " + FeatureSchema.MEL_BINS + "] (2 frames per speech token, "
                        + FeatureSchema.MEL_BINS + " mel bins)");
            }
            length(d, "prompt_speech_feat_len", 2 * tokens.length, where);
            float[] mel = finite(feat.floats(), "prompt_speech_feat", where);
            float[] emb = embedding(d, "llm_embedding", where);
            if (!java.util.Arrays.equals(emb, embedding(d, "flow_embedding", where))) {
                throw new FeatureFileException(where + "'flow_embedding' differs from 'llm_embedding' (CosyVoice stores one tensor)");
            }
            return new Data(text, tokens, mel, emb);
        }

        /** The llm_ and flow_ twins are one slot: CosyVoice saves them as one tensor. */
        private static String slot(String key) {
            return key.startsWith("flow_") ? "llm_" + key.substring(5) : key;
        }

        private static TorchSave.TensorRef tensor(Map<?, ?> d, String key, TorchSave.DType dtype, String where) {
            TorchSave.TensorRef t = (TorchSave.TensorRef) d.get(key);
            boolean ok = dtype == TorchSave.DType.FLOAT ? t.storage.dtype() == TorchSave.DType.FLOAT
                    : t.storage.dtype() != TorchSave.DType.FLOAT;
            if (!ok) {
                throw new FeatureFileException(where + "key '" + key + "' holds " + t.storage.dtype().name().toLowerCase()
                        + " values; expected " + (dtype == TorchSave.DType.FLOAT ? "float32" : "int32 or int64"));
            }
            return t;
        }

        private static int[] ids(Map<?, ?> d, String key, String where, int maxLength, int vocab, String what) {
            TorchSave.TensorRef t = tensor(d, key, TorchSave.DType.INT, where);
            if (t.shape.length != 2 || t.shape[0] != 1) {
                throw new FeatureFileException(where + "'" + key + "' has shape " + t.shapeText() + "; expected [1, N]");
            }
            if (t.shape[1] > maxLength) {
                throw new FeatureFileException(where + "'" + key + "' has " + t.shape[1] + " ids; at most " + maxLength
                        + " are accepted", true);
            }
            int[] ids = t.ints();
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] < 0 || ids[i] >= vocab) {
                    throw new FeatureFileException(where + "'" + key + "' holds id " + ids[i] + " at position " + i
                            + "; " + what + " are 0 to " + (vocab - 1));
                }
            }
            return ids;
        }

        private static void length(Map<?, ?> d, String key, int expected, String where) {
            TorchSave.TensorRef t = tensor(d, key, TorchSave.DType.INT, where);
            if (t.shape.length != 1 || t.shape[0] != 1) {
                throw new FeatureFileException(where + "'" + key + "' has shape " + t.shapeText() + "; expected [1]");
            }
            int v = t.ints()[0];
            if (v != expected) {
                throw new FeatureFileException(where + "'" + key + "' is " + v + "; the tensor it describes has " + expected);
            }
        }

        private static float[] embedding(Map<?, ?> d, String key, String where) {
            TorchSave.TensorRef t = tensor(d, key, TorchSave.DType.FLOAT, where);
            if (t.shape.length != 2 || t.shape[0] != 1 || t.shape[1] != FeatureSchema.EMBEDDING_DIM) {
                throw new FeatureFileException(where + "'" + key + "' has shape " + t.shapeText() + "; expected [1, "
                        + FeatureSchema.EMBEDDING_DIM + "]");
            }
            return finite(t.floats(), key, where);
        }

        private static float[] finite(float[] v, String key, String where) {
            for (float x : v) {
                if (!Float.isFinite(x)) {
                    throw new FeatureFileException(where + "'" + key + "' holds NaN or infinite values");
                }
            }
            return v;
        }
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            promptText.releaseReference();
            speechTokens.releaseReference();
            speechFeat.releaseReference();
            embedding.releaseReference();
        }
    }
}
