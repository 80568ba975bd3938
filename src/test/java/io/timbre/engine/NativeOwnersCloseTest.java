package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The one ownership idiom of every native owner in the engine: {@code close()} without a checked exception, and
 * a second close does nothing (no double free, no exception). Each owner is built cheaply from the tiny pack,
 * closed twice, and where it has one, its use after close is refused rather than touching freed memory.
 */
class NativeOwnersCloseTest {
    @Test
    void everyNativeOwnerClosesTwice() throws Exception {
        ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
        TextTokenizer tok = new TextTokenizer(Golden.PACK.resolve("tokenizer.json"));
        try (TinySpeaker tiny = TinySpeaker.load()) {
            RandomSource random = RandomSource.forSegment(1, 0);
            random.close();
            assertDoesNotThrow(random::close, "RandomSource");
            assertThrows(IllegalStateException.class, () -> random.normal(new long[]{1}), "a closed RandomSource draws nothing");

            SpeakerFeatures copy = new SpeakerFeatures(tiny.spk.promptText(), tiny.spk.speechTokens(), tiny.spk.speechFeat(),
                    tiny.spk.embedding());
            copy.close();
            assertDoesNotThrow(copy::close, "SpeakerFeatures");
            assertThrows(IllegalStateException.class, copy::promptText, "closed features are not read");

            SpeechLm.Batch batch = new SpeechLm(tiny.pack).new Batch();
            batch.close();
            assertDoesNotThrow(batch::close, "SpeechLm.Batch");

            RandomSource hopRandom = RandomSource.forSegment(2, 0);
            HopDecoder hop = new HopDecoder(tiny.pack, tiny.spk, hopRandom);
            hop.close();
            assertDoesNotThrow(hop::close, "HopDecoder");
            hopRandom.close();

            Synthesizer s = new Synthesizer(tiny.pack, new Synthesizer.Settings(true, 4, 4, Duration.ofSeconds(60), 1),
                    DeviceMemory.forDevice(tiny.pack.device, "never", "0"));
            SynthesisJob job = s.submit(Requests.of(tiny.tok, tiny.spk, List.of("Closed twice."), new Synthesizer.Options(1, true)));
            job.close();
            assertDoesNotThrow(job::close, "SynthesisJob");
            assertTrue(job.cancelled(), "closing an unfinished job cancels it");
            s.close();
            assertDoesNotThrow(s::close, "Synthesizer");
        }
        tok.close();
        assertDoesNotThrow(tok::close, "TextTokenizer");
        pack.close();
        assertDoesNotThrow(pack::close, "ModelPack (and its ONNX sessions)");
        OnnxModels onnx = pack.onnx();
        assertDoesNotThrow(onnx::close, "OnnxModels, already closed by its pack");
    }
}
