package io.timbre.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.timbre.audio.DecodedAudio;
import io.timbre.audio.WavCodec;
import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Timbre against CosyVoice 3's own code (Fun-CosyVoice3-0.5B-2512's classes: CosyVoice3, CosyVoice3LM,
 * CausalMaskedDiffWithDiT, CausalHiFTGenerator). models/conformance/cosyvoice3/model is a random-weight model directory
 * in the release's layout; expected/ holds what CosyVoice's CosyVoice3 class computed on it
 * (models/conformance/generate_cosyvoice3.py). This test exports the directory with export_cosyvoice3.py under
 * Debian's PyTorch 1.13 (python3 on PATH, or TIMBRE_PYTHON; {@link TinyCosyVoice3Pack}, which the service tests on this
 * pack share), loads the pack (family cosyvoice3) into the Java engine
 * and compares: text ids (Qwen2 tokenizer with CosyVoice3Tokenizer's specials: the system prompt's
 * &lt;|endofprompt|&gt;, inline pinyin [j][ǐ], CMU phonemes [AY0], the instruct text), prompt features, greedy speech
 * tokens (CosyVoice 3's head of 6761 ids, EOS masked below min_len, any of 6561..6760 stops), the DiT flow mel and
 * the causal HiFT waveform. Five cases: English and Chinese zero-shot, inline pinyin, CMU phonemes, instruct2.
 * Missing python or PyTorch fails the test (it never skips).
 */
class CosyVoice3ConformanceTest {
    static final Path FIXTURES = Path.of("models/conformance/cosyvoice3");
    static final Path MODEL = TinyCosyVoice3Pack.MODEL;
    static final Path EXPECTED = FIXTURES.resolve("expected");
    static final Path PROMPTS = Path.of("models/conformance/cosyvoice2/prompts");
    static final Path PACK = TinyCosyVoice3Pack.PACK;

    // Tolerances: 10-20x the largest difference measured here (LibTorch 2.10 / ONNX Runtime 1.23.2 against
    // CosyVoice's run under PyTorch 2.13 / onnxruntime 1.30); ids and tokens must be equal.
    /** Prompt mel as magnitudes relative to the peak. */
    static final double FEAT_MAGNITUDE_TOL = 2e-5;
    /** Speaker embedding (campplus.onnx through ORT Java on Java's fbank). */
    static final float EMBEDDING_TOL = 1e-5f;
    /** DiT flow mel after 10 Euler steps (|x| up to 6.4) from CosyVoice's own inputs. */
    static final float MEL_TOL = 5e-5f;
    /** Causal HiFT waveform (|x| < 0.08) of CosyVoice's mel (no random draws: fixed source buffers). */
    static final float WAV_TOL = 2e-6f;

    static JsonNode expected;
    static ModelPack pack;
    static TextTokenizer tokenizer;

    @BeforeAll
    static void exportAndLoad() throws Exception {
        expected = new ObjectMapper().readTree(EXPECTED.resolve("expected.json").toFile());
        TinyCosyVoice3Pack.ensure();
        pack = ModelPack.load(PACK, "cpu");
        tokenizer = new TextTokenizer(PACK.resolve(pack.manifest.moduleFiles().get("tokenizer")));
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
        tests.add(DynamicTest.dynamicTest("pack declares family cosyvoice3 and its stop rule", CosyVoice3ConformanceTest::declaration));
        tests.add(DynamicTest.dynamicTest("text ids of transformers' Qwen2 tokenizer with CosyVoice3Tokenizer's specials",
                CosyVoice3ConformanceTest::textIds));
        for (JsonNode prompt : expected.get("prompts")) {
            tests.add(DynamicTest.dynamicTest("frontend features of prompt " + prompt.get("id").asText(), () -> promptFeatures(prompt)));
        }
        for (JsonNode c : expected.get("cases")) {
            String id = c.get("id").asText();
            tests.add(DynamicTest.dynamicTest("text ids of " + id, () -> caseIds(c)));
            tests.add(DynamicTest.dynamicTest("greedy speech tokens of " + id, () -> greedyTokens(c)));
            tests.add(DynamicTest.dynamicTest("flow mel of " + id, () -> Golden.flowMel(pack, EXPECTED, c, MEL_TOL)));
            tests.add(DynamicTest.dynamicTest("HiFT waveform of " + id, () -> hiftWaveform(c)));
        }
        return tests;
    }

    static void declaration() {
        PackManifest m = pack.manifest;
        assertEquals("cosyvoice3", m.family());
        assertEquals(6561 + 200, m.vocabSize(), "CosyVoice3LM's head: 6561 speech tokens + 200 reserved ids");
        int[] stops = new int[200];
        for (int i = 0; i < stops.length; i++) {
            stops[i] = 6561 + i;
        }
        assertArrayEquals(stops, m.stopTokens(), "every reserved id stops decoding (CosyVoice3LM.stop_token_ids)");
        assertEquals(expected.get("tokenizer").get("special_tokens").get("<|endofprompt|>").asInt(),
                Golden.toInts(tokenizer.encode("<|endofprompt|>"))[0], "<|endofprompt|> id (CosyVoice3LM asserts 151646)");
    }

    static void textIds() {
        for (JsonNode e : expected.get("tokenizer").get("encodings")) {
            String text = e.get("text").asText();
            assertArrayEquals(Golden.ints(e.get("ids")), Golden.toInts(tokenizer.encode(text)), "ids of \"" + text + "\"");
        }
    }

    /** The ids CosyVoice fed its LLM: the (normalized) target text, and the prompt text (zero-shot: the system prompt
     * and transcript; instruct2: the instruct text). The markup tokens ([j][ǐ], [M][AY0]...) are single ids. */
    static void caseIds(JsonNode c) {
        assertArrayEquals(Golden.ints(c.get("text_ids")), Golden.toInts(tokenizer.encode(c.get("normalized_text").asText())), "text ids");
        assertArrayEquals(Golden.ints(c.get("prompt_text_ids")), Golden.toInts(tokenizer.encode(c.get("normalized_prompt_text").asText())),
                "prompt text ids");
    }

    /** add_zero_shot_spk: the spk2info entry of a prompt recording (its transcript with the system prompt). */
    static void promptFeatures(JsonNode prompt) throws IOException {
        String wav = Path.of(prompt.get("prompt_wav").asText()).getFileName().toString();
        DecodedAudio audio = WavCodec.decode(Files.readAllBytes(PROMPTS.resolve(wav)));
        assertEquals(prompt.get("sample_rate").asInt(), audio.sampleRate());
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode();
             SpeakerFeatures f = new FeatureExtractor(pack, tokenizer).extract(audio.samples(), audio.sampleRate(),
                     prompt.get("prompt_text").asText())) {
            GenericDict g = Golden.load(EXPECTED.resolve(prompt.get("fixture").asText()));
            String id = prompt.get("id").asText();
            assertArrayEquals(Tensors.toInts(Golden.get(g, "prompt_text")), Tensors.toInts(f.promptText()), id + " prompt text ids");
            assertArrayEquals(Tensors.toInts(Golden.get(g, "llm_prompt_speech_token")), Tensors.toInts(f.speechTokens()),
                    id + " prompt speech tokens (speech_tokenizer_v3.onnx)");
            Golden.logMagnitude(id + " prompt_speech_feat", Golden.get(g, "prompt_speech_feat"), f.speechFeat(), FEAT_MAGNITUDE_TOL);
            Golden.check(id + " embedding", Golden.get(g, "flow_embedding"), f.embedding(), EMBEDDING_TOL);
        }
    }

    /**
     * As for CosyVoice 2 (CosyVoice2ConformanceTest.greedyTokens): the first token comes from the prefill and must
     * equal CosyVoice's own run; later tokens are held to CosyVoice3LM's loop with an all-ones attention mask
     * (expected/greedy_full_attention.json), because the oracle's transformers 4.57.6 pads the [1, 1] decode mask
     * with zeros where CosyVoice's pinned 4.51.3 attends to every cached position.
     */
    static void greedyTokens(JsonNode c) {
        try (PointerScope scope = new PointerScope()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            var input = new SpeechLm.Input(Tensors.toLongs(Golden.get(g, "prompt_text_ids")), Tensors.toLongs(Golden.get(g, "text_ids")),
                    Tensors.toLongs(Golden.get(g, "llm_prompt_speech_token")), Sampler.greedy(pack.manifest), Integer.MAX_VALUE);
            int[] tokens = new SpeechLm(pack).generate(List.of(input)).get(0);
            int[] cosy = Tensors.toInts(Golden.get(g, "speech_tokens"));
            int[] want = Golden.ints(c.get("speech_tokens_full_attention"));
            System.out.printf("conformance %-12s greedy tokens: %d generated (min_len %d), full attention %d, %d equal; "
                            + "first %s CosyVoice's own run%n", c.get("id").asText(), tokens.length, c.get("min_len").asInt(),
                    want.length, Golden.countEqual(want, tokens), cosy[0] == tokens[0] ? "equal to" : "DIFFERENT from");
            assertEquals(cosy[0], tokens[0], "first speech token (prefill) against CosyVoice's own run");
            assertArrayEquals(want, tokens, "greedy speech tokens, CosyVoice3LM's decoding loop with full attention");
        }
    }

    static void hiftWaveform(JsonNode c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(EXPECTED.resolve(c.get("fixture").asText()));
            float[] wav = new Vocoder(pack).vocode(Golden.get(g, "mel"));
            float[] want = Tensors.toFloats(Golden.get(g, "wav"));
            assertEquals(want.length, wav.length, "waveform length");
            float d = Golden.maxAbsDiff(want, wav);
            System.out.printf("conformance %-12s wav max|diff| %.3g (tolerance %.1g), mean %.3g, expected max|x| %.3g%n",
                    c.get("id").asText(), d, WAV_TOL, Golden.meanAbsDiff(want, wav), Golden.maxAbs(want));
            assertTrue(d <= WAV_TOL, "waveform differs by " + d);
        }
    }
}
