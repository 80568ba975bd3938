package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Device;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Feature files in CosyVoice's spk2info format: Python's files read in Java, Java's round-trip. */
class SpeakerFeaturesTest {
    /** The tiny pack's vocabularies; the flow's noise covers 7500 tokens, a 30 s prompt has 750. */
    static final FeatureSchema TINY = new FeatureSchema(6561, 276, 750, FeatureSchema.MAX_TEXT_TOKENS);

    static Map<String, SpeakerFeatures> readGolden() throws java.io.IOException {
        Map<String, SpeakerFeatures> out = new java.util.LinkedHashMap<>();
        SpeakerFeatures.readSpk2info(Files.readAllBytes(Golden.DIR.resolve("spk2info.pt")), TINY, TorchSave.Limits.of(1 << 24), 100, "x")
                .forEach((k, v) -> out.put(k, v.toFeatures(new Device("cpu"))));
        return out;
    }

    @Test
    void readsCosyVoiceSpk2infoWrittenByPython() throws Exception {
        NativeTorch.ensureLoaded();
        Map<String, SpeakerFeatures> speakers = readGolden();
        try (PointerScope scope = new PointerScope()) {
            assertEquals(java.util.List.of("tone", "chirp", "bursts"), java.util.List.copyOf(speakers.keySet()));
            var golden = Golden.load(Golden.DIR.resolve("tone.pt"));
            SpeakerFeatures tone = speakers.get("tone");
            assertArrayEquals(Tensors.toInts(Golden.get(golden, "llm_prompt_speech_token")), Tensors.toInts(tone.speechTokens()));
            assertArrayEquals(Tensors.toFloats(Golden.get(golden, "prompt_speech_feat")), Tensors.toFloats(tone.speechFeat()));
        } finally {
            speakers.values().forEach(SpeakerFeatures::close);
        }
    }

    @Test
    void featureFileRoundTripsExactly() throws Exception {
        float[] wav = io.timbre.audio.WavCodec.decode(Files.readAllBytes(Golden.DIR.resolve("chirp.wav"))).samples();
        try (ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
             TextTokenizer tok = new TextTokenizer(Golden.PACK.resolve("tokenizer.json"));
             SpeakerFeatures f = new FeatureExtractor(pack, tok).extract(wav, 16000, "这是一段提示音。");
             SpeakerFeatures back = SpeakerFeatures.fromFeatureFile(f.toFeatureFile(), FeatureSchema.of(pack), pack.device);
             PointerScope scope = new PointerScope()) {
            assertArrayEquals(Tensors.toInts(f.promptText()), Tensors.toInts(back.promptText()));
            assertArrayEquals(Tensors.toInts(f.speechTokens()), Tensors.toInts(back.speechTokens()));
            assertArrayEquals(Tensors.toFloats(f.speechFeat()), Tensors.toFloats(back.speechFeat()));
            assertArrayEquals(Tensors.toFloats(f.embedding()), Tensors.toFloats(back.embedding()));
            assertEquals(f.nativeBytes(), back.nativeBytes());
        }
    }

    /** Runs where Debian's python3-torch is installed (the toolchain's machines); CI without Python skips it. */
    @Test
    void pythonTorchLoadReadsJavasFeatureFile(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) throws Exception {
        java.nio.file.Path python = java.nio.file.Path.of("/usr/bin/python3");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isExecutable(python)
                && new ProcessBuilder(python.toString(), "-c", "import torch").start().waitFor() == 0, "no python3-torch");
        NativeTorch.ensureLoaded();
        Map<String, SpeakerFeatures> speakers = readGolden();
        try {
            java.nio.file.Path file = tmp.resolve("tone.pt");
            Files.write(file, speakers.get("tone").toFeatureFile());
            Process p = new ProcessBuilder(python.toString(), "-c", String.join("\n",
                    "import sys, torch",
                    "d = torch.load(sys.argv[1])",
                    "g = torch.load(sys.argv[2])['tone']",
                    "assert list(d) == list(g), (list(d), list(g))",
                    "assert all(torch.equal(d[k], g[k]) and d[k].dtype == g[k].dtype for k in d)",
                    "print('ok', len(d))"), file.toString(), Golden.DIR.resolve("spk2info.pt").toString())
                    .redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            assertEquals(0, p.waitFor(), out);
            assertTrue(out.contains("ok 10"), out);
        } finally {
            speakers.values().forEach(SpeakerFeatures::close);
        }
    }

    @Test
    void garbageIsRefusedWithAReason() {
        NativeTorch.ensureLoaded();
        FeatureFileException e = assertThrows(FeatureFileException.class,
                () -> SpeakerFeatures.fromFeatureFile("not a torch file".getBytes(), TINY, new Device("cpu")));
        assertTrue(e.getMessage().contains("torch.save"), e.getMessage());
    }

    @Test
    void closedFeaturesCannotBeUsed() throws Exception {
        NativeTorch.ensureLoaded();
        Map<String, SpeakerFeatures> all = readGolden();
        all.values().stream().skip(1).forEach(SpeakerFeatures::close);
        SpeakerFeatures f = all.values().iterator().next();
        f.close();
        assertThrows(IllegalStateException.class, f::speechTokens);
    }
}
