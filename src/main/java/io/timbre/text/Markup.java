package io.timbre.text;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Markup the model reads as written, which normalization and segmentation must pass through intact: CosyVoice 3's
 * inline pronunciation, one bracket per pinyin initial or final with its tone ({@code 报道[j][ǐ]予好评}, example.py) or
 * per CMU phoneme with its stress ({@code [M][AY1][K]}), and the tags of both families ({@code [breath]},
 * {@code [laughter]}, {@code [quick_breath]}, {@code <strong>...</strong>}, {@code <laughter>...</laughter>}); each is one
 * special token of the pack's tokenizer. Bracketed digits (a citation such as {@code [1]}) are not markup and are read.
 * <p>
 * {@link #mask} swaps each piece of markup for one private-use character, so that no rule reads it (no acronym
 * spelling of {@code [AH0]}, no number reading of its stress digit) and no cut falls inside it; {@link Masked#restore}
 * puts it back. A piece of markup counts as one unit of a segment's length, as it is one token of the model.
 */
public final class Markup {
    /**
     * Lower case: pinyin initials and finals (tone marks, ü) and tags such as [quick_breath]; upper case: CMU phonemes
     * (one or two letters and an optional stress digit); and the strong/laughter tags.
     */
    static final Pattern MARKUP = Pattern.compile(
            "\\[[a-z\\u00E0-\\u024F][a-z\\u00E0-\\u024F_-]{0,23}]|\\[[A-Z]{1,2}[0-2]?]|</?(?:strong|laughter)>");
    private static final char FIRST = '\uE000';
    private static final char LAST = '\uF8FF';

    private Markup() {
    }

    /** Text with its markup swapped for placeholders, and what each placeholder stands for. */
    public record Masked(String text, List<String> pieces) {
        /** {@code s} (made from {@link #text}) with every placeholder replaced by the markup it stands for. */
        public String restore(String s) {
            if (pieces.isEmpty()) {
                return s;
            }
            StringBuilder sb = new StringBuilder(s.length() + 8 * pieces.size());
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                int k = c - FIRST;
                sb.append(c >= FIRST && c <= LAST && k < pieces.size() ? pieces.get(k) : String.valueOf(c));
            }
            return sb.toString();
        }

        public List<String> restoreAll(List<String> segments) {
            List<String> out = new ArrayList<>(segments.size());
            for (String s : segments) {
                out.add(restore(s));
            }
            return out;
        }
    }

    /**
     * Swaps markup (and any private-use character the text already holds, which then stands for itself) for
     * placeholders. Text without either comes back as it is.
     */
    public static Masked mask(String text) {
        Matcher m = MARKUP.matcher(text);
        boolean found = m.find();
        if (!found && !hasPrivateUse(text)) {
            return new Masked(text, List.of());
        }
        List<String> pieces = new ArrayList<>();
        StringBuilder sb = new StringBuilder(text.length());
        int at = 0;
        while (found && pieces.size() < LAST - FIRST) {
            privateUse(text, at, m.start(), sb, pieces);
            sb.append((char) (FIRST + pieces.size()));
            pieces.add(m.group());
            at = m.end();
            found = m.find();
        }
        privateUse(text, at, text.length(), sb, pieces);
        return new Masked(sb.toString(), pieces);
    }

    /** Copies text[from, to), giving a private-use character already there a placeholder of its own. */
    private static void privateUse(String text, int from, int to, StringBuilder sb, List<String> pieces) {
        for (int i = from; i < to; i++) {
            char c = text.charAt(i);
            if (c >= FIRST && c <= LAST && pieces.size() < LAST - FIRST) {
                sb.append((char) (FIRST + pieces.size()));
                pieces.add(String.valueOf(c));
            } else {
                sb.append(c);
            }
        }
    }

    private static boolean hasPrivateUse(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c >= FIRST && c <= LAST) {
                return true;
            }
        }
        return false;
    }
}
