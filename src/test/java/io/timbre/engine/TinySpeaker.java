package io.timbre.engine;

import io.timbre.audio.WavCodec;
import io.timbre.text.TextTokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.Arrays;

/**
 * The engine tests' common set-up: the tiny pack, its tokenizer, and a speaker from the first 3 s of the golden
 * tone prompt (16 kHz). Owns all three and closes them, once, in reverse order.
 */
final class TinySpeaker implements AutoCloseable {
    final ModelPack pack;
    final TextTokenizer tok;
    final SpeakerFeatures spk;
    private boolean closed;

    private TinySpeaker(ModelPack pack, TextTokenizer tok, SpeakerFeatures spk) {
        this.pack = pack;
        this.tok = tok;
        this.spk = spk;
    }

    static TinySpeaker load() {
        ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
        TextTokenizer tok = new TextTokenizer(Golden.PACK.resolve("tokenizer.json"));
        try {
            float[] prompt = WavCodec.decode(Files.readAllBytes(Golden.DIR.resolve("tone.wav"))).samples();
            SpeakerFeatures spk = new FeatureExtractor(pack, tok).extract(Arrays.copyOf(prompt, 16000 * 3), 16000, "A steady vowel.");
            return new TinySpeaker(pack, tok, spk);
        } catch (IOException | RuntimeException e) {
            tok.close();
            pack.close();
            throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        spk.close();
        tok.close();
        pack.close();
    }
}
