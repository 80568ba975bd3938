package io.timbre.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.timbre.audio.DecodedAudio;
import io.timbre.audio.WavCodec;
import io.timbre.text.TextFrontend;
import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Timbre against CosyVoice's own code. models/conformance/cosyvoice2/model is a random-weight model directory in the
 * exact layout of the CosyVoice2-0.5B release; expected/ holds what CosyVoice's own classes computed on it
 * (models/conformance/README.md). This test exports the directory with Timbre's exporter under Debian's PyTorch
 * 1.13 (python3 on PATH, or TIMBRE_PYTHON; CI installs python3-torch and python3-torchaudio in .ci/run), loads the
 * pack into the Java engine and compares every stage:
 * <ul>
 * <li>text ids (the pack's tokenizer.json against transformers' Qwen2 tokenizer) and the text normalization of
 * the target text and of the zero-shot prompt transcript: exactly;</li>
 * <li>frontend features of two prompts (16 kHz and 48 kHz recordings) through frontend.pt and ONNX Runtime for
 * Java: prompt text ids and speech tokens exactly, the 24 kHz prompt mel and the embedding within tolerances;</li>
 * <li>greedy speech tokens (Java's greedy decode with upstream's EOS mask below min_len and stop rule): exactly;</li>
 * <li>the flow mel from CosyVoice's inputs and the HiFT waveform of CosyVoice's mel (same seed): within
 * tolerances.</li>
 * </ul>
 * Missing python or PyTorch fails the test (it never skips): conformance is what CI must prove.
 */
class CosyVoice2ConformanceTest {
    static final Path FIXTURES = Path.of("models/conformance/cosyvoice2");
    static final Path MODEL = FIXTURES.resolve("model");
    static final Path EXPECTED = FIXTURES.resolve("expected");
    static final Path PACK = Path.of("target/conformance/cosyvoice2-pack");

    // Tolerances: about 10-20x the largest difference measured here (LibTorch 2.10 and ONNX Runtime 1.23.2 on this
    // x86-64 CPU against PyTorch 2.13 and onnxruntime 1.30 in CosyVoice's run), to absorb other CPUs' kernels, and
    // orders of magnitude below any audible change. Discrete outputs (ids, tokens) must be equal.
    /** Prompt mel (natural log, -11..3) as magnitudes relative to the utterance's peak: measured 1.5e-6 (log domain
     * 3.1e-4 at the noise floor, mean 2e-6). */
    static final double FEAT_MAGNITUDE_TOL = 2e-5;
    /** Speaker embedding (|x| up to 1.5), campplus.onnx through ORT Java on Java's fbank: measured 4.8e-7. */
    static final float EMBEDDING_TOL = 1e-5f;
    /** Flow mel after 10 Euler steps (|x| up to 6) from CosyVoice's own inputs: measured 1.1e-5 (mean 1.9e-6). */
    static final float MEL_TOL = 2e-4f;
    /** HiFT waveform (|x| < 0.1) of CosyVoice's mel under torch.manual_seed(1234): measured 1.1e-7 (mean 1.4e-8). */
    static final float WAV_TOL = 2e-6f;

    static JsonNode expected;
    static ModelPack pack;
    static TextTokenizer tokenizer;
    static TextFrontend frontend;

    @BeforeAll
    static void exportAndLoad() throws Exception {
        expected = new ObjectMapper().readTree(EXPECTED.resolve("expected.json").toFile());
        exportOnce();
        pack = ModelPack.load(PACK, "cpu");
        PackManifest m = pack.manifest;
        tokenizer = new TextTokenizer(PACK.resolve(m.moduleFiles().get("tokenizer")));
        frontend = new TextFrontend(tokenizer::count, m.tokenMaxN(), m.tokenMinN(), m.mergeLen());
    }

    private static boolean exported;

    /**
     * Exports the conformance model directory with the project's exporter into {@link #PACK}, once per JVM (the
     * streaming conformance test uses the same pack).
     */
    static synchronized void exportOnce() throws Exception {
        if (exported) {
            return;
        }
        deleteTree(PACK);
        Files.createDirectories(PACK.getParent());
        String python = System.getenv().getOrDefault("TIMBRE_PYTHON",
                Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3");
        List<String> cmd = List.of(python, "models/export_cosyvoice2.py", MODEL.toString(), "--out", PACK.toString());
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new AssertionError("cannot run " + python + " (the exporter needs Debian's python3 with python3-torch and "
                    + "python3-torchaudio; .ci/run installs them): " + e.getMessage(), e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(30, TimeUnit.MINUTES), "exporter did not finish");
        System.out.println("exporter: " + String.join(" ", cmd) + "\n" + out);
        assertEquals(0, p.exitValue(), "the exporter failed on the release-layout directory:\n" + out);
        exported = true;
    }

    @AfterAll
    static void close() {
        if (tokenizer != null) {
            tokenizer.close();
        }
        if (pack != null) {
            pack.close();
        }
    }

    @TestFactory
    List<DynamicTest> conformance() {
        List<DynamicTest> tests = new ArrayList<>();
        tests.add(DynamicTest.dynamicTest("text ids of transformers' Qwen2 tokenizer", CosyVoice2ConformanceTest::textIds));
        for (JsonNode prompt : expected.get("prompts")) {
            tests.add(DynamicTest.dynamicTest("frontend features of prompt " + prompt.get("id").asText(), () -> promptFeatures(prompt)));
        }
        for (JsonNode c : expected.get("cases")) {
            String id = c.get("id").asText();
            tests.add(DynamicTest.dynamicTest("text normalization of " + id, () -> normalization(c)));
            tests.add(DynamicTest.dynamicTest("greedy speech tokens of " + id, () -> greedyTokens(c)));
            tests.add(DynamicTest.dynamicTest("flow mel of " + id, () -> Golden.flowMel(pack, EXPECTED, c, MEL_TOL)));
            tests.add(DynamicTest.dynamicTest("HiFT waveform of " + id, () -> hiftWaveform(c)));
        }
        return tests;
    }

    static void textIds() {
        for (JsonNode e : expected.get("tokenizer").get("encodings")) {
            String text = e.get("text").asText();
            assertArrayEquals(Golden.ints(e.get("ids")), Golden.toInts(tokenizer.encode(text)), "ids of \"" + text + "\"");
        }
    }

    static void normalization(JsonNode c) {
        assertEquals(List.of(c.get("normalized_text").asText()), frontend.segments(c.get("text").asText()), "target text");
        // CosyVoice's inference_zero_shot normalizes the prompt transcript (text_normalize(split=False))
        assertEquals(c.get("normalized_prompt_text").asText(), frontend.normalize(c.get("prompt_text").asText()), "prompt text");
        assertArrayEquals(Golden.ints(c.get("text_ids")), Golden.toInts(tokenizer.encode(c.get("normalized_text").asText())), "text ids");
        assertArrayEquals(Golden.ints(c.get("prompt_text_ids")), Golden.toInts(tokenizer.encode(c.get("normalized_prompt_text").asText())),
                "prompt text ids");
    }

    /** add_zero_shot_spk: the spk2info entry of a prompt recording (its transcript not normalized). */
    static void promptFeatures(JsonNode prompt) throws IOException {
        DecodedAudio audio = WavCodec.decode(Files.readAllBytes(EXPECTED.resolve(prompt.get("prompt_wav").asText())));
        assertEquals(prompt.get("sample_rate").asInt(), audio.sampleRate());
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode();
             SpeakerFeatures f = new FeatureExtractor(pack, tokenizer).extract(audio.samples(), audio.sampleRate(),
                     prompt.get("prompt_text").asText())) {
            GenericDict g = Golden.load(EXPECTED.resolve(prompt.get("fixture").asText()));
            String id = prompt.get("id").asText();
            assertArrayEquals(Tensors.toInts(Golden.get(g, "prompt_text")), Tensors.toInts(f.promptText()), id + " prompt text ids");
            int[] want = Tensors.toInts(Golden.get(g, "llm_prompt_speech_token"));
            int[] got = Tensors.toInts(f.speechTokens());
            System.out.printf("conformance %-8s speech tokens: %d expected, %d equal%n", id, want.length, Golden.countEqual(want, got));
            assertArrayEquals(want, got, id + " prompt speech tokens (speech_tokenizer_v2.onnx)");
            Golden.logMagnitude(id + " prompt_speech_feat", Golden.get(g, "prompt_speech_feat"), f.speechFeat(), FEAT_MAGNITUDE_TOL);
            Golden.check(id + " embedding", Golden.get(g, "flow_embedding"), f.embedding(), EMBEDDING_TOL);
        }
    }

    /**
     * The first token comes from the prefill, where CosyVoice's attention mask is complete: it must equal CosyVoice's.
     * Later tokens: CosyVoice's forward_one_step passes a [1, 1] mask at each decode step; its pinned transformers
     * (4.51.3) reads that as full attention, the oracle's transformers 4.57.6 pads it with zeros (the token sees
     * position 0 only), so expected.json's later tokens are not what CosyVoice computes in its own environment.
     * greedy_full_attention.json has CosyVoice 2's decoding loop on transformers' Qwen2 with the full mask
     * (models/conformance/greedy_full_attention.py, which also checks that the padded mask reproduces expected.json).
     */
    static void greedyTokens(JsonNode c) throws IOException {
        JsonNode full = new ObjectMapper().readTree(EXPECTED.resolve("greedy_full_attention.json").toFile())
                .get("cases").get(c.get("id").asText());
        try (PointerScope scope = new PointerScope()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            var input = new SpeechLm.Input(Tensors.toLongs(Golden.get(g, "prompt_text_ids")), Tensors.toLongs(Golden.get(g, "text_ids")),
                    Tensors.toLongs(Golden.get(g, "llm_prompt_speech_token")), Sampler.greedy(pack.manifest), Integer.MAX_VALUE);
            int[] tokens = new SpeechLm(pack).generate(List.of(input)).get(0);
            int[] cosy = Tensors.toInts(Golden.get(g, "speech_tokens"));
            int[] want = Golden.ints(full.get("speech_tokens"));
            System.out.printf("conformance %-20s greedy tokens: %d generated (min_len %d); CosyVoice (transformers 4.57.6 mask) %d, "
                            + "%d equal, first %s; full attention %d, %d equal%n", c.get("id").asText(), tokens.length,
                    c.get("min_len").asInt(), cosy.length, Golden.countEqual(cosy, tokens), cosy[0] == tokens[0] ? "equal" : "DIFFERENT",
                    want.length, Golden.countEqual(want, tokens));
            assertEquals(cosy[0], tokens[0], "first speech token (prefill) against CosyVoice's own run");
            assertArrayEquals(want, tokens, "greedy speech tokens, CosyVoice's decoding loop with full attention");
        }
    }

    static void hiftWaveform(JsonNode c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            // CosyVoice drew from torch's global generator right after manual_seed(seed); a RandomSource seeded the same
            // way draws the same numbers, and the global generator is not touched
            float[] wav;
            try (RandomSource random = new RandomSource(expected.get("seeds").get("hift_manual_seed_before_each_vocoder_call").asLong())) {
                wav = new Vocoder(pack).vocode(Golden.get(g, "mel"), random);
            }
            float[] want = Tensors.toFloats(Golden.get(g, "wav"));
            float d = Golden.maxAbsDiff(want, wav);
            System.out.printf("conformance %-20s wav max|diff| %.3g (tolerance %.1g), mean %.3g, expected max|x| %.3g%n",
                    c.get("id").asText(), d, WAV_TOL, Golden.meanAbsDiff(want, wav), Golden.maxAbs(want));
            assertTrue(d <= WAV_TOL, "waveform differs by " + d);
        }
    }


    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
