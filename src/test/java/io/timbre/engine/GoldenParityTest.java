package io.timbre.engine;

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
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Java engine against the golden fixtures of the Python reference pipeline (PyTorch 1.13 wrote them; this
 * runs LibTorch 2.10). Same TorchScript code on both sides, so the differences are float32 rounding from
 * different kernels (FFT, GEMM blocking, vectorised transcendental functions): ~1e-6 relative per op.
 * Tolerances are set about two orders of magnitude above the differences measured here, and far below any
 * change of meaning: discrete outputs (speech tokens of the prompt, greedy speech tokens, text ids) must be equal.
 */
class GoldenParityTest {
    /**
     * Kaldi fbank and Whisper log-mel (values ~1-20): measured <= 2e-6 on 16 kHz prompts. The 48 kHz bursts prompt
     * is resampled to 16 kHz first (resampled samples differ by ~3e-8) and has silent gaps whose frame energies sit
     * near float32's floor, where log energy moves by up to 2.6e-4 (mean difference 4e-7).
     */
    static final float FEATURE_TOL = 1e-3f;
    /** 24 kHz mel (log magnitudes) as linear magnitudes relative to the utterance's peak. */
    static final double MAGNITUDE_TOL = 1e-5;
    /** 192-d speaker embedding (values ~1) from campplus.onnx, ORT Java 1.23.2 against Python onnxruntime: measured ~1e-6. */
    static final float EMBEDDING_TOL = 1e-4f;
    /** mel after 10 Euler steps of the estimator (values ~1): measured ~1.5e-6. */
    static final float MEL_TOL = 2e-4f;
    /**
     * waveform in [-1, 1], also end to end: measured ~1e-6 against the Python reference. Run-to-run spread of the
     * Java side, measured on the tiny pack: 0.0 (the same mel vocoded on another thread, as 3 concurrent calls, and
     * beside 2 busy threads; a sampled request alone and beside 2 others, 710400 samples, 3 rounds); 3.7e-9 between
     * 1 and 2 LibTorch threads (1.1213e-6 vs 1.1176e-6 from the golden waveform). The vocoder's random draws come
     * from the call's RandomSource, so load cannot move them.
     */
    static final float WAV_TOL = 1e-4f;

    static ModelPack pack;
    static TextTokenizer tokenizer;

    @BeforeAll
    static void load() {
        pack = ModelPack.load(Golden.PACK, "cpu");
        tokenizer = new TextTokenizer(Golden.PACK.resolve("tokenizer.json"));
    }

    @AfterAll
    static void close() {
        tokenizer.close();
        pack.close();
    }

    @TestFactory
    List<DynamicTest> everyGoldenCase() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Golden.Case c : Golden.cases()) {
            tests.add(DynamicTest.dynamicTest("features of " + c.prompt(), () -> features(c)));
            tests.add(DynamicTest.dynamicTest("greedy speech tokens of " + c.prompt(), () -> tokens(c)));
            tests.add(DynamicTest.dynamicTest("mel and waveform of " + c.prompt(), () -> melAndWaveform(c)));
        }
        // the whole chain once (the stages above already cover every case separately)
        Golden.Case first = Golden.cases().get(0);
        tests.add(DynamicTest.dynamicTest("end to end " + first.prompt(), () -> endToEnd(first)));
        return tests;
    }

    void features(Golden.Case c) throws IOException {
        DecodedAudio audio = WavCodec.decode(Files.readAllBytes(c.wav()));
        float[] wav = audio.samples();
        int rate = audio.sampleRate();
        assertEquals(c.promptRate(), rate, "prompt sample rate");
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(c.fixture());
            assertArrayEquals(Tensors.toFloats(Golden.get(g, "prompt_wav")), wav, "WAV decoding differs from Python's");
            Tensor w = Tensors.floats(wav, 1, wav.length);
            Tensor w16k = rate == 16000 ? w : Tensors.tensor(Tensors.call(pack.resample, w, (long) rate, 16000L));
            check("wav16k", Golden.get(g, "wav16k"), w16k, WAV_TOL);
            check("kaldi_fbank", Golden.get(g, "kaldi_fbank"), Tensors.tensor(Tensors.call(pack.kaldiFbank, w16k)), FEATURE_TOL);
            check("whisper_log_mel", Golden.get(g, "whisper_log_mel"), Tensors.tensor(Tensors.call(pack.whisperLogMel, w16k)), FEATURE_TOL);
            check("wav24k", Golden.get(g, "wav24k"), Tensors.tensor(Tensors.call(pack.resample, w, (long) rate, 24000L)), WAV_TOL);
            // the ONNX models through ONNX Runtime for Java (1.23.2) against the Python reference's onnxruntime run
            try (SpeakerFeatures f = new FeatureExtractor(pack, tokenizer).extract(wav, rate, c.promptText())) {
                assertArrayEquals(Tensors.toInts(Golden.get(g, "prompt_text")), Tensors.toInts(f.promptText()), "prompt text ids");
                assertArrayEquals(Tensors.toInts(Golden.get(g, "llm_prompt_speech_token")), Tensors.toInts(f.speechTokens()),
                        "prompt speech tokens");
                checkLogMagnitude("prompt_speech_feat", Golden.get(g, "prompt_speech_feat"), f.speechFeat());
                check("flow_embedding", Golden.get(g, "flow_embedding"), f.embedding(), EMBEDDING_TOL);
            }
        }
    }

    void tokens(Golden.Case c) {
        try (PointerScope scope = new PointerScope()) {
            GenericDict g = Golden.load(c.fixture());
            int[] text = Tensors.toInts(Golden.get(g, "text"));
            assertArrayEquals(text, toInts(tokenizer.encode(c.text())), "text ids of " + c.text());
            long[] ids = Tensors.toLongs(Golden.get(g, "text"));
            var input = new SpeechLm.Input(Tensors.toLongs(Golden.get(g, "prompt_text")), ids,
                    Tensors.toLongs(Golden.get(g, "llm_prompt_speech_token")), Sampler.greedy(pack.manifest), Integer.MAX_VALUE);
            int[] tokens = new SpeechLm(pack).generate(List.of(input)).get(0);
            assertArrayEquals(Tensors.toInts(Golden.get(g, "speech_tokens")), tokens, "greedy speech tokens");
        }
    }

    void melAndWaveform(Golden.Case c) {
        try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            GenericDict g = Golden.load(c.fixture());
            try (SpeakerFeatures spk = goldenFeatures(g)) {
                Tensor mel = new FlowDecoder(pack).decode(spk, Tensors.toInts(Golden.get(g, "speech_tokens")));
                check("mel", Golden.get(g, "mel"), mel, MEL_TOL);
                float[] wav;
                try (RandomSource random = new RandomSource(Golden.vocoderSeed())) {
                    wav = new Vocoder(pack).vocode(Golden.get(g, "mel"), random);
                }
                float d = Golden.maxAbsDiff(Tensors.toFloats(Golden.get(g, "wav")), wav);
                System.out.printf("parity %-8s wav max|diff| %.3g%n", c.prompt(), d);
                assertTrue(d <= WAV_TOL, "waveform differs by " + d);
            }
        }
    }

    void endToEnd(Golden.Case c) {
        try (PointerScope scope = new PointerScope();
             Synthesizer synth = new Synthesizer(pack, 2, DeviceMemory.forDevice(pack.device, "never", "0"))) {
            GenericDict g = Golden.load(c.fixture());
            try (SpeakerFeatures spk = goldenFeatures(g)) {
                Synthesizer.Result r = synth.synthesize(Requests.of(tokenizer, spk, List.of(c.text()), new Synthesizer.Options(0, true)));
                // the request's segment 0 draws from RandomSource.forSegment(0, 0), the fixture's wav from seed
                // golden.json vocoder_seed: the golden mel vocoded with the request's own source is the expectation
                float[] expected;
                try (PointerScope inner = new PointerScope(); InferenceMode mode = new InferenceMode();
                     RandomSource random = RandomSource.forSegment(0, 0)) {
                    expected = new Vocoder(pack).vocode(Golden.get(g, "mel"), random);
                }
                assertEquals(expected.length, r.pcm().length, "samples");
                float d = Golden.maxAbsDiff(expected, r.pcm());
                assertTrue(d <= WAV_TOL, "end-to-end waveform differs by " + d);
            }
        }
    }

    private static SpeakerFeatures goldenFeatures(GenericDict g) {
        return new SpeakerFeatures.Data(Tensors.toInts(Golden.get(g, "prompt_text")),
                Tensors.toInts(Golden.get(g, "llm_prompt_speech_token")), Tensors.toFloats(Golden.get(g, "prompt_speech_feat")),
                Tensors.toFloats(Golden.get(g, "flow_embedding"))).toFeatures(pack.device);
    }

    private static void check(String what, Tensor expected, Tensor actual, float tol) {
        assertEquals(Tensors.shape(expected), Tensors.shape(actual), what + " shape");
        float[] e = Tensors.toFloats(expected);
        float[] a = Tensors.toFloats(actual);
        float d = Golden.maxAbsDiff(e, a);
        System.out.printf("parity %-18s max|diff| %.3g (tolerance %.1g), mean %.3g%n", what, d, tol, Golden.meanAbsDiff(e, a));
        assertTrue(d <= tol, what + " differs by " + d + " (tolerance " + tol + ")");
    }

    /**
     * A log-magnitude feature compared where it has physical meaning: linear magnitudes exp(x), relative to the
     * utterance's peak. Bins at float32's FFT noise floor (pure tones, chirps: ~1e-6 of the peak) differ by up to
     * ~1e-2 in the log domain between FFT implementations while their magnitudes differ by ~1e-9 of the peak.
     */
    private static void checkLogMagnitude(String what, Tensor expected, Tensor actual) {
        assertEquals(Tensors.shape(expected), Tensors.shape(actual), what + " shape");
        float[] e = Tensors.toFloats(expected);
        float[] a = Tensors.toFloats(actual);
        double rel = Golden.magnitudeDiffOfPeak(e, a);
        System.out.printf("parity %-18s max|diff| of magnitudes %.3g of the peak (tolerance %.1g), log-domain max %.3g%n",
                what, rel, MAGNITUDE_TOL, Golden.maxAbsDiff(e, a));
        assertTrue(rel <= MAGNITUDE_TOL, what + " magnitudes differ by " + rel + " of the peak");
    }

    private static int[] toInts(long[] a) {
        int[] out = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = (int) a[i];
        }
        return out;
    }
}
