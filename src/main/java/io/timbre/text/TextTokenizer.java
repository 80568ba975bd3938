package io.timbre.text;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Map;

/** The pack's tokenizer.json through the HF tokenizers runtime (DJL binding, natives bundled in its jar). */
public final class TextTokenizer implements AutoCloseable {
    private final HuggingFaceTokenizer tokenizer;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    public TextTokenizer(Path tokenizerJson) {
        try {
            this.tokenizer = HuggingFaceTokenizer.newInstance(tokenizerJson,
                    Map.of("addSpecialTokens", "false", "modelMaxLength", "1000000", "truncation", "false"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read tokenizer " + tokenizerJson, e);
        }
    }

    /** Token ids of {@code text}; special tokens written literally (e.g. "[laughter]") map to their ids. */
    public long[] encode(String text) {
        if (text.isEmpty()) {
            return new long[0];
        }
        Encoding e = tokenizer.encode(text, false, false);
        return e.getIds();
    }

    public int count(String text) {
        return encode(text).length;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            tokenizer.close();
        }
    }
}
