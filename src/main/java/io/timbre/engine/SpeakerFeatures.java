package io.timbre.engine;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.ByteVector;
import org.bytedeco.pytorch.CompilationUnit;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Function;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.GenericDictEntryRef;
import org.bytedeco.pytorch.GenericDictIterator;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.QualifiedName;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

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

    private static final String DICT_SOURCE = """
            def spk2info(prompt_text: Tensor, prompt_text_len: Tensor, tokens: Tensor, tokens_len: Tensor, feat: Tensor, feat_len: Tensor, embedding: Tensor) -> Dict[str, Tensor]:
                return {"prompt_text": prompt_text, "prompt_text_len": prompt_text_len, "llm_prompt_speech_token": tokens, "llm_prompt_speech_token_len": tokens_len, "flow_prompt_speech_token": tokens, "flow_prompt_speech_token_len": tokens_len, "prompt_speech_feat": feat, "prompt_speech_feat_len": feat_len, "llm_embedding": embedding, "flow_embedding": embedding}
            """;
    private static CompilationUnit dictUnit;   // owns dictBuilder: both live as long as the JVM
    private static volatile Function dictBuilder;

    private final Tensor promptText;     // int32 [1, L]
    private final Tensor speechTokens;   // int32 [1, N]
    private final Tensor speechFeat;     // float [1, 2N, 80]
    private final Tensor embedding;      // float [1, 192]
    private final long bytes;
    private boolean closed;

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

    public int promptTextLength() {
        return (int) promptText.size(1);
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
        if (closed) {
            throw new IllegalStateException("speaker features already closed");
        }
        return t;
    }

    /** The feature file: a torch.save'd dict of the spk2info keys (Python: torch.load; LibTorch: pickle_load). */
    public byte[] toFeatureFile() {
        try (PointerScope scope = new PointerScope()) {
            IValue dict = toDict();
            ByteVector bytes = torch.pickle_save(dict);
            return bytes.get();
        }
    }

    /** The spk2info entry as a TorchScript dict (CPU tensors), attached to the caller's scope. */
    IValue toDict() {
        Function f = builder();
        Tensor[] values = {promptText().cpu(), lengthOf(promptText), speechTokens().cpu(), lengthOf(speechTokens),
                speechFeat().cpu(), lengthOf(speechFeat), embedding().cpu()};
        IValue[] args = new IValue[values.length];
        for (int i = 0; i < values.length; i++) {
            args[i] = new IValue(values[i]);
        }
        return f.apply(new IValueVector(args));
    }

    private static Tensor lengthOf(Tensor t) {
        return Tensors.ints(new int[]{(int) t.size(1)}, 1);
    }

    private static Function builder() {
        Function f = dictBuilder;
        if (f == null) {
            synchronized (SpeakerFeatures.class) {
                if (dictBuilder == null) {
                    NativeTorch.ensureLoaded();
                    // retained: the caller's PointerScope must not free these JVM-lifetime objects
                    dictUnit = torch.compile(DICT_SOURCE);
                    dictUnit.retainReference();
                    Function fn = dictUnit.get_function(new QualifiedName("spk2info"));
                    fn.retainReference();
                    dictBuilder = fn;
                }
                f = dictBuilder;
            }
        }
        return f;
    }

    /** Reads a feature file written by {@link #toFeatureFile()} or by Python's torch.save of an spk2info entry. */
    public static SpeakerFeatures fromFeatureFile(byte[] data, Device device) {
        NativeTorch.ensureLoaded();
        try (PointerScope scope = new PointerScope()) {
            IValue v = load(data);
            if (!v.isGenericDict()) {
                throw new FeatureFileException("the feature file does not hold a dict of spk2info tensors");
            }
            return fromDict(v.toGenericDict(), device);
        }
    }

    /** Reads a CosyVoice spk2info.pt: speaker id -> spk2info entry. Caller owns (and closes) the values. */
    public static Map<String, SpeakerFeatures> readSpk2info(byte[] data, Device device) {
        NativeTorch.ensureLoaded();
        Map<String, SpeakerFeatures> out = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            IValue v = load(data);
            if (!v.isGenericDict()) {
                throw new FeatureFileException("spk2info.pt must hold a dict: speaker id -> dict of feature tensors");
            }
            GenericDict d = v.toGenericDict();
            for (GenericDictIterator it = d.begin(); !it.equals(d.end()); it = it.increment()) {
                GenericDictEntryRef e = it.access();
                if (!e.key().isString()) {
                    throw new FeatureFileException("spk2info.pt keys must be speaker id strings");
                }
                String id = e.key().toStringRef().getString();
                if (!e.value().isGenericDict()) {
                    throw new FeatureFileException("spk2info.pt entry '" + id + "' is not a dict of tensors");
                }
                try {
                    out.put(id, fromDict(e.value().toGenericDict(), device));
                } catch (FeatureFileException ex) {
                    out.values().forEach(SpeakerFeatures::close);
                    throw new FeatureFileException("spk2info.pt entry '" + id + "': " + ex.getMessage());
                }
            }
        } catch (RuntimeException e) {
            if (!(e instanceof FeatureFileException)) {
                out.values().forEach(SpeakerFeatures::close);
            }
            throw e;
        }
        return out;
    }

    private static IValue load(byte[] data) {
        try {
            return torch.pickle_load(new ByteVector(data));
        } catch (RuntimeException e) {
            throw new FeatureFileException("not a readable torch.save file: " + firstLine(e.getMessage()));
        }
    }

    static SpeakerFeatures fromDict(GenericDict d, Device device) {
        Tensor text = get(d, "prompt_text", ScalarType.Int, device, 2);
        Tensor tokens = get(d, "llm_prompt_speech_token", ScalarType.Int, device, 2);
        Tensor feat = get(d, "prompt_speech_feat", ScalarType.Float, device, 3);
        Tensor emb = get(d, "flow_embedding", ScalarType.Float, device, 2);
        if (feat.size(2) != 80 || emb.size(1) != 192 || feat.size(1) != 2 * tokens.size(1)) {
            throw new FeatureFileException("inconsistent shapes: prompt_speech_feat " + shape(feat)
                    + ", llm_prompt_speech_token " + shape(tokens) + ", flow_embedding " + shape(emb)
                    + " (expected [1, 2N, 80], [1, N], [1, 192])");
        }
        return new SpeakerFeatures(text, tokens, feat, emb);
    }

    private static Tensor get(GenericDict d, String key, ScalarType type, Device device, int dims) {
        IValue k = new IValue(key);
        if (!d.contains(k)) {
            throw new FeatureFileException("key '" + key + "' is missing (a CosyVoice 2 zero-shot spk2info entry has "
                    + String.join(", ", KEYS) + ")");
        }
        IValue v = d.at(k);
        if (!v.isTensor()) {
            throw new FeatureFileException("key '" + key + "' is not a tensor");
        }
        Tensor t = new Tensor(v.toTensor());
        if (t.dim() != dims) {
            throw new FeatureFileException("key '" + key + "' has shape " + shape(t) + ", expected " + dims + " dimensions");
        }
        return t.to(device, type).contiguous();
    }

    private static String shape(Tensor t) {
        return Tensors.shape(t);
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "unknown error";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            promptText.releaseReference();
            speechTokens.releaseReference();
            speechFeat.releaseReference();
            embedding.releaseReference();
        }
    }
}
