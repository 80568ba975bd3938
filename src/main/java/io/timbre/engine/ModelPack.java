package io.timbre.engine;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.DeviceOptional;
import org.bytedeco.pytorch.JitModule;
import org.bytedeco.pytorch.Method;
import org.bytedeco.pytorch.global.torch;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A loaded model pack: the verified manifest, the TorchScript modules on their device and the ONNX Runtime sessions
 * of the release's speaker encoder and speech tokenizer. Owns the modules, the cached method handles and the
 * sessions; {@link #close()} frees them all (idempotent).
 */
public final class ModelPack implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(ModelPack.class);

    public final Path dir;
    public final PackManifest manifest;
    public final Device device;
    private final JitModule frontend;
    private final JitModule llm;
    private final JitModule flow;
    private final JitModule vocoder;
    final Method resample;
    final Method kaldiFbank;
    final Method whisperLogMel;
    final Method speechFeat;
    final Method prefill;
    final Method decode;
    final Method encode;
    final Method estimate;
    final Method noise;
    /** flow.encode_streaming / estimate_streaming: null in a pack without them (it cannot stream by hop). */
    final Method encodeStreaming;
    final Method estimateStreaming;
    final Method vocode;
    /** vocoder.vocode_streaming(mel, finalize): null in a pack without it (needed by streaming.vocoder_cache rerun). */
    final Method vocodeStreaming;
    /** campplus.onnx and speech_tokenizer_v2.onnx; opened last, so a refusal leaves nothing open. */
    final OnnxModels onnx;
    private final AtomicBoolean closed = new AtomicBoolean();

    private ModelPack(Path dir, PackManifest manifest, Device device, OnnxModels.Options onnxOptions) {
        this.dir = dir;
        this.manifest = manifest;
        this.device = device;
        this.frontend = module("frontend");
        this.llm = module("llm");
        this.flow = module("flow");
        this.vocoder = module("vocoder");
        this.resample = method(frontend, "frontend", "resample");
        this.kaldiFbank = method(frontend, "frontend", "kaldi_fbank");
        this.whisperLogMel = method(frontend, "frontend", "whisper_log_mel");
        this.speechFeat = method(frontend, "frontend", "speech_feat");
        this.prefill = method(llm, "llm", "prefill");
        this.decode = method(llm, "llm", "decode");
        this.encode = method(flow, "flow", "encode");
        this.estimate = method(flow, "flow", "estimate");
        this.noise = method(flow, "flow", "noise");
        this.encodeStreaming = flow.find_method("encode_streaming").has_value() ? flow.get_method("encode_streaming") : null;
        this.estimateStreaming = flow.find_method("estimate_streaming").has_value() ? flow.get_method("estimate_streaming") : null;
        this.vocode = method(vocoder, "vocoder", "vocode");
        this.vocodeStreaming = vocoder.find_method("vocode_streaming").has_value() ? vocoder.get_method("vocode_streaming") : null;
        this.onnx = OnnxModels.open(dir, manifest, onnxOptions, device.is_cuda() ? Math.max(0, device.index()) : -1);
    }

    /**
     * Reads pack.json, verifies every listed file's size and sha256 (a missing or altered file stops with a
     * message naming it) and loads the modules onto {@code device} ("cpu", "cuda", "cuda:N") in eval mode.
     */
    public static ModelPack load(Path dir, String device) {
        return load(dir, device, OnnxModels.Options.DEFAULT);
    }

    /** As {@link #load(Path, String)}, with the thread counts of the ONNX Runtime sessions. */
    public static ModelPack load(Path dir, String device, OnnxModels.Options onnxOptions) {
        if (!Files.isDirectory(dir)) {
            throw new PackException("model pack directory " + dir.toAbsolutePath() + " does not exist");
        }
        PackManifest manifest = PackManifest.read(dir);
        verify(dir, manifest);
        NativeTorch.ensureLoaded();
        long t0 = System.nanoTime();
        ModelPack pack;
        try (PointerScope scope = new PointerScope()) {   // whatever scope the caller has open, the pack outlives it
            Device dev;
            try {
                dev = new Device(device);
            } catch (RuntimeException e) {
                throw new PackException("unknown device '" + device + "' (use cpu, cuda or cuda:N)", e);
            }
            if (dev.is_cuda() && !torch.cuda_is_available()) {
                throw new PackException("device " + device + " was requested but LibTorch sees no CUDA device "
                        + "(is this the gpu build, with CUDA 13 and cuDNN 9 on the host?)");
            }
            pack = new ModelPack(dir, manifest, dev, onnxOptions);
            for (Pointer p : pack.owned()) {
                p.retainReference();
            }
        }
        LOG.infof("model pack %s (version %s, %s) loaded on %s in %d ms", manifest.name(), manifest.version(),
                manifest.size(), device, (System.nanoTime() - t0) / 1_000_000);
        return pack;
    }

    static void verify(Path dir, PackManifest manifest) {
        for (Map.Entry<String, PackManifest.FileEntry> e : manifest.files().entrySet()) {
            Path file = dir.resolve(e.getKey());
            if (!Files.isRegularFile(file)) {
                throw new PackException("model pack " + dir + ": file " + e.getKey() + " listed in pack.json is missing");
            }
            String actual = sha256(file);
            if (!actual.equals(e.getValue().sha256())) {
                throw new PackException("model pack " + dir + ": file " + e.getKey() + " is altered (sha256 " + actual
                        + ", pack.json says " + e.getValue().sha256() + ")");
            }
        }
        for (String file : manifest.moduleFiles().values()) {
            if (!manifest.files().containsKey(file)) {
                throw new PackException("model pack " + dir + ": " + file + " has no sha256 in pack.json");
            }
        }
    }

    public static String sha256(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new PackException("cannot read " + file + ": " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private JitModule module(String part) {
        Path file = dir.resolve(manifest.moduleFiles().get(part));
        try {
            JitModule m = torch.load(file.toString(), new DeviceOptional(device), false);
            m.eval();
            return m;
        } catch (RuntimeException e) {
            throw new PackException("model pack " + dir + ": cannot load " + file.getFileName() + ": " + e.getMessage(), e);
        }
    }

    private static Method method(JitModule module, String part, String name) {
        if (!module.find_method(name).has_value()) {
            throw new PackException("model pack module " + part + " has no method '" + name + "' required by " + PackManifest.FORMAT);
        }
        return module.get_method(name);
    }

    public String key() {
        return manifest.name() + "@" + manifest.version();
    }

    private Pointer[] owned() {
        return java.util.stream.Stream.of(resample, kaldiFbank, whisperLogMel, speechFeat, prefill, decode,
                encode, estimate, noise, encodeStreaming, estimateStreaming, vocode, vocodeStreaming, frontend, llm, flow, vocoder, device)
                .filter(java.util.Objects::nonNull).toArray(Pointer[]::new);
    }

    /**
     * True when the pack carries what chunked streaming needs (pack.json streaming, the flow's streaming methods and,
     * for a vocoder declared to re-run over all the mel, vocoder.vocode_streaming).
     */
    public boolean streams() {
        return encodeStreaming != null && estimateStreaming != null && manifest.streaming() != null
                && (manifest.streaming().vocoderCache() != PackManifest.VocoderCache.RERUN || vocodeStreaming != null);
    }

    /** The ONNX sessions (tests check that closing the pack closes them). */
    public OnnxModels onnx() {
        return onnx;
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        onnx.close();
        for (Pointer p : owned()) {
            p.releaseReference();
        }
    }
}
