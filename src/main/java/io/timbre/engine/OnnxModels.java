package io.timbre.engine;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;

import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The pack's two ONNX models, the files the CosyVoice 2 release ships, run by ONNX Runtime as CosyVoice's frontend
 * runs them: inputs fed by position, all graph optimisations, fixed intra/inter-op thread counts.
 * <ul>
 * <li>speaker encoder ({@code campplus.onnx}): float32 [B, T, 80] (Kaldi fbank minus its mean) -> float32 [B, 192];</li>
 * <li>speech tokenizer ({@code speech_tokenizer_v2.onnx}): float32 [1, 128, T] (Whisper log-mel) and int32 [1] (T)
 * -> integer ids [1, N] (int32 or int64).</li>
 * </ul>
 * Owns both sessions; {@link #close()} frees them (idempotent). Every tensor handed to or returned by ORT is closed
 * by the try block that created it; input data is read from the caller's native memory, never copied into memory
 * the garbage collector frees. Sessions are thread-safe for concurrent runs.
 */
public final class OnnxModels implements AutoCloseable {
    /** Thread counts of both sessions (CosyVoice: intra-op 1); on CUDA, the speech tokenizer runs on the GPU. */
    public record Options(int intraOpThreads, int interOpThreads) {
        public static final Options DEFAULT = new Options(1, 1);
    }

    private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, "timbre");

    private final OrtSession speakerEncoder;
    private final OrtSession speechTokenizer;
    private final List<String> speakerInputs;
    private final List<String> tokenizerInputs;
    private final boolean tokensAreLong;
    private final AtomicBoolean closed = new AtomicBoolean();

    private OnnxModels(OrtSession speakerEncoder, OrtSession speechTokenizer) throws OrtException {
        this.speakerEncoder = speakerEncoder;
        this.speechTokenizer = speechTokenizer;
        this.speakerInputs = new ArrayList<>(speakerEncoder.getInputInfo().keySet());
        this.tokenizerInputs = new ArrayList<>(speechTokenizer.getInputInfo().keySet());
        this.tokensAreLong = ((TensorInfo) speechTokenizer.getOutputInfo().values().iterator().next().getInfo()).type
                == OnnxJavaType.INT64;
    }

    /**
     * Opens both models (their sha256 already checked against pack.json) and checks their signatures.
     *
     * @param cuda CUDA device index for the speech tokenizer (CosyVoice runs it on the GPU, CAM++ on the CPU), or -1
     */
    static OnnxModels open(Path dir, PackManifest m, Options options, int cuda) {
        OrtSession spk = null;
        OrtSession tok = null;
        try {
            spk = session(dir.resolve(m.speakerEncoder()), options, -1);
            checkSpeakerEncoder(m.speakerEncoder(), spk);
            tok = session(dir.resolve(m.speechTokenizer()), options, cuda);
            checkSpeechTokenizer(m.speechTokenizer(), tok);
            return new OnnxModels(spk, tok);
        } catch (OrtException | RuntimeException e) {
            closeQuietly(tok);
            closeQuietly(spk);
            if (e instanceof PackException p) {
                throw p;
            }
            throw new PackException("model pack " + dir + ": ONNX Runtime cannot open a model: " + e.getMessage(), e);
        }
    }

    private static OrtSession session(Path file, Options o, int cuda) throws OrtException {
        try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
            opts.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            opts.setIntraOpNumThreads(Math.max(1, o.intraOpThreads()));
            opts.setInterOpNumThreads(Math.max(1, o.interOpThreads()));
            opts.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            if (cuda >= 0) {
                try {
                    opts.addCUDA(cuda);
                } catch (OrtException e) {
                    throw new PackException("ONNX Runtime has no CUDA provider for " + file.getFileName()
                            + " (the gpu build, -Pgpu, uses onnxruntime_gpu): " + e.getMessage(), e);
                }
            }
            try {
                return ENV.createSession(file.toString(), opts);
            } catch (OrtException e) {
                throw new PackException("model pack file " + file.getFileName() + " is not a model ONNX Runtime can load: "
                        + e.getMessage(), e);
            }
        }
    }

    // --------------------------------------------------------------------------------------- signatures
    private static void checkSpeakerEncoder(String file, OrtSession s) throws OrtException {
        List<TensorInfo> in = infos(file, s.getInputInfo());
        List<TensorInfo> out = infos(file, s.getOutputInfo());
        expect(in.size() == 1, file, "has " + in.size() + " inputs, the speaker encoder takes 1 (fbank [B, T, 80])");
        expectTensor(file, "input 0", in.get(0), Set.of(OnnxJavaType.FLOAT), 3, 2, 80);
        expect(!out.isEmpty(), file, "has no output");
        expectTensor(file, "output 0", out.get(0), Set.of(OnnxJavaType.FLOAT), 2, 1, 192);
    }

    private static void checkSpeechTokenizer(String file, OrtSession s) throws OrtException {
        List<TensorInfo> in = infos(file, s.getInputInfo());
        List<TensorInfo> out = infos(file, s.getOutputInfo());
        expect(in.size() == 2, file, "has " + in.size() + " inputs, the speech tokenizer takes 2 (log-mel [1, 128, T], length [1])");
        expectTensor(file, "input 0", in.get(0), Set.of(OnnxJavaType.FLOAT), 3, 1, 128);
        expectTensor(file, "input 1", in.get(1), Set.of(OnnxJavaType.INT32), 1, -1, 0);
        expect(!out.isEmpty(), file, "has no output");
        expectTensor(file, "output 0", out.get(0), Set.of(OnnxJavaType.INT32, OnnxJavaType.INT64), 2, -1, 0);
    }

    private static List<TensorInfo> infos(String file, Map<String, NodeInfo> nodes) {
        List<TensorInfo> out = new ArrayList<>();
        for (NodeInfo n : nodes.values()) {
            if (!(n.getInfo() instanceof TensorInfo t)) {
                throw new PackException("model pack file " + file + ": " + n.getName() + " is not a tensor (" + n.getInfo() + ")");
            }
            out.add(t);
        }
        return out;
    }

    private static void expectTensor(String file, String what, TensorInfo t, Set<OnnxJavaType> types, int rank, int axis, long size) {
        long[] shape = t.getShape();
        boolean ok = types.contains(t.type) && shape.length == rank
                && (axis < 0 || shape[axis] < 0 || shape[axis] == size);
        expect(ok, file, what + " is " + t.type + " " + Arrays.toString(shape) + ", wanted " + types + " of rank " + rank
                + (axis < 0 ? "" : " with axis " + axis + " = " + size));
    }

    private static void expect(boolean ok, String file, String message) {
        if (!ok) {
            throw new PackException("model pack file " + file + " has the wrong signature: " + message);
        }
    }

    // ------------------------------------------------------------------------------------------ running
    /**
     * @param fbank  Kaldi fbank minus its mean, {@code frames * 80} floats (a direct buffer, e.g. a tensor's memory)
     * @return the 192-d embedding
     */
    public float[] speakerEmbedding(FloatBuffer fbank, long frames) {
        ensureOpen();
        try (OnnxTensor in = OnnxTensor.createTensor(ENV, fbank, new long[]{1, frames, 80});
             OrtSession.Result r = speakerEncoder.run(Map.of(speakerInputs.get(0), in))) {
            FloatBuffer out = ((OnnxTensor) r.get(0)).getFloatBuffer();
            float[] emb = new float[out.remaining()];
            out.get(emb);
            return emb;
        } catch (OrtException e) {
            throw new IllegalStateException("speaker encoder failed: " + e.getMessage(), e);
        }
    }

    /**
     * @param logMel Whisper log-mel, {@code 128 * frames} floats in [128, T] order (a direct buffer)
     * @return speech token ids (CosyVoice flattens the output)
     */
    public int[] speechTokens(FloatBuffer logMel, long frames) {
        ensureOpen();
        try (OnnxTensor in = OnnxTensor.createTensor(ENV, logMel, new long[]{1, 128, frames});
             OnnxTensor len = OnnxTensor.createTensor(ENV, IntBuffer.wrap(new int[]{Math.toIntExact(frames)}), new long[]{1});
             OrtSession.Result r = speechTokenizer.run(Map.of(tokenizerInputs.get(0), in, tokenizerInputs.get(1), len))) {
            OnnxValue v = r.get(0);
            if (tokensAreLong) {
                LongBuffer b = ((OnnxTensor) v).getLongBuffer();
                int[] ids = new int[b.remaining()];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = Math.toIntExact(b.get());
                }
                return ids;
            }
            IntBuffer b = ((OnnxTensor) v).getIntBuffer();
            int[] ids = new int[b.remaining()];
            b.get(ids);
            return ids;
        } catch (OrtException e) {
            throw new IllegalStateException("speech tokenizer failed: " + e.getMessage(), e);
        }
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new IllegalStateException("the ONNX sessions of this pack are closed");
        }
    }

    public boolean isClosed() {
        return closed.get();
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            closeQuietly(speechTokenizer);
            closeQuietly(speakerEncoder);
        }
    }

    private static void closeQuietly(OrtSession s) {
        if (s != null) {
            try {
                s.close();
            } catch (OrtException e) {
                throw new IllegalStateException("cannot close an ONNX Runtime session: " + e.getMessage(), e);
            }
        }
    }
}
