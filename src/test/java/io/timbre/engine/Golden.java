package io.timbre.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.ByteVector;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The golden fixtures of models/tiny, written by the Python reference pipeline (models/timbrepack/golden.py). */
final class Golden {
    static final Path PACK = Path.of("models/tiny");
    static final Path DIR = PACK.resolve("golden");

    record Case(String prompt, Path wav, int promptRate, String promptText, String text, Path fixture) {
    }

    static List<Case> cases() {
        try {
            JsonNode root = new ObjectMapper().readTree(DIR.resolve("golden.json").toFile());
            List<Case> out = new ArrayList<>();
            for (JsonNode c : root.get("cases")) {
                out.add(new Case(c.get("prompt").asText(), DIR.resolve(c.get("prompt_wav").asText()),
                        c.get("prompt_rate").asInt(), c.get("prompt_text").asText(), c.get("text").asText(), DIR.resolve(c.get("fixture").asText())));
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** golden.json's vocoder_seed: the RandomSource seed the reference vocoded every case with. */
    static long vocoderSeed() {
        try {
            return new ObjectMapper().readTree(DIR.resolve("golden.json").toFile()).get("vocoder_seed").asLong();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A torch.save'd dict of tensors; values are attached to the caller's PointerScope. */
    static GenericDict load(Path file) {
        NativeTorch.ensureLoaded();
        try {
            return torch.pickle_load(new ByteVector(Files.readAllBytes(file))).toGenericDict();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Tensor get(GenericDict d, String key) {
        return new Tensor(d.at(new IValue(key)).toTensor());
    }

    static float maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new AssertionError("length " + a.length + " != " + b.length);
        }
        float m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    /**
     * Log magnitudes compared as linear magnitudes exp(x), relative to the expected peak: the largest
     * |exp(e) - exp(a)| over max exp(e). Bins at the FFT noise floor differ in the log domain only.
     */
    static double magnitudeDiffOfPeak(float[] e, float[] a) {
        double peak = 0;
        double worst = 0;
        for (int i = 0; i < e.length; i++) {
            peak = Math.max(peak, Math.exp(e[i]));
            worst = Math.max(worst, Math.abs(Math.exp(e[i]) - Math.exp(a[i])));
        }
        return worst / peak;
    }

    static double meanAbsDiff(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += Math.abs(a[i] - b[i]);
        }
        return a.length == 0 ? 0 : s / a.length;
    }

    private Golden() {
    }

    // ------------------------------------------------------------ comparisons shared by the conformance tests
    static void check(String what, Tensor expected, Tensor actual, float tol) {
        assertEquals(Tensors.shape(expected), Tensors.shape(actual), what + " shape");
        float[] e = Tensors.toFloats(expected);
        float[] a = Tensors.toFloats(actual);
        float d = maxAbsDiff(e, a);
        System.out.printf("conformance %-24s max|diff| %.3g (tolerance %.1g), mean %.3g, expected max|x| %.3g%n",
                what, d, tol, meanAbsDiff(e, a), maxAbs(e));
        assertTrue(d <= tol, what + " differs by " + d + " (tolerance " + tol + ")");
    }

    /** Log magnitudes compared as magnitudes relative to the peak (bins at the noise floor differ in log only). */
    static void logMagnitude(String what, Tensor expected, Tensor actual, double tol) {
        assertEquals(Tensors.shape(expected), Tensors.shape(actual), what + " shape");
        float[] e = Tensors.toFloats(expected);
        float[] a = Tensors.toFloats(actual);
        double rel = magnitudeDiffOfPeak(e, a);
        System.out.printf("conformance %-24s magnitudes max|diff| %.3g of the peak (tolerance %.1g); log domain max %.3g, mean %.3g%n",
                what, rel, tol, maxAbsDiff(e, a), meanAbsDiff(e, a));
        assertTrue(rel <= tol, what + " magnitudes differ by " + rel + " of the peak");
    }

    static float maxAbs(float[] x) {
        float m = 0;
        for (float v : x) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    static int countEqual(int[] a, int[] b) {
        int n = 0;
        for (int i = 0; i < Math.min(a.length, b.length); i++) {
            n += a[i] == b[i] ? 1 : 0;
        }
        return n;
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    static int[] toInts(long[] a) {
        int[] out = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = Math.toIntExact(a[i]);
        }
        return out;
    }

    /** A conformance case's flow: the case's prompt features and speech tokens through the pack's flow, against its mel. */
    static void flowMel(ModelPack pack, Path expected, JsonNode c, float tol) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = load(expected.resolve(c.get("fixture").asText()));
            try (SpeakerFeatures spk = new SpeakerFeatures(get(g, "prompt_text_ids"), get(g, "flow_prompt_speech_token"),
                    get(g, "prompt_speech_feat"), get(g, "embedding"))) {
                Tensor mel = new FlowDecoder(pack).decode(spk, Tensors.toInts(get(g, "speech_tokens")));
                check(c.get("id").asText() + " mel", get(g, "mel"), mel, tol);
            }
        }
    }
}
