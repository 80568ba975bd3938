package io.timbre.engine;

import io.timbre.text.TextFrontend;
import io.timbre.text.TextTokenizer;

import java.util.List;

/**
 * The engine tests' frontend: what the service does in front of the engine (segmentation of a text as the tiny
 * pack's frontend does it, then the tokenizer), so that tests hand the engine token ids, as the service does.
 */
final class Requests {
    private Requests() {
    }

    /** The segments, tokenized one by one. */
    static SpeechRequest of(TextTokenizer tok, SpeakerFeatures spk, List<String> segments, Synthesizer.Options options) {
        return new SpeechRequest(spk, segments.stream().map(tok::encode).toList(), options);
    }

    /** A text split as the tiny pack's frontend splits it, then tokenized. */
    static SpeechRequest of(TextTokenizer tok, SpeakerFeatures spk, String text, Synthesizer.Options options) {
        PackManifest m = PackManifest.read(Golden.PACK);
        List<String> segments = new TextFrontend(tok::count, m.tokenMaxN(), m.tokenMinN(), m.mergeLen()).segments(text);
        return of(tok, spk, segments, options);
    }
}
