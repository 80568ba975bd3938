package io.timbre.text;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.ToIntFunction;
import java.util.regex.Pattern;

/**
 * CosyVoice 2's text frontend (text_normalize with split=True), with Timbre's normaliser and a hard budget:
 * <ol>
 *   <li>invisible characters (NUL and other controls, zero-width marks, BOM) are removed and full-width forms
 *       folded to ASCII;</li>
 *   <li>the text is cut into sentences at split_paragraph's marks, but never inside a token: not at a decimal
 *       point, a time's or a ratio's colon, an abbreviation's period, or a period followed by a letter;</li>
 *   <li>each sentence is read in its own language (Chinese if it has a Chinese character, else English, unless
 *       the caller forces one) by {@link TextNormalizer}, then cleaned as CosyVoice cleans Chinese text;</li>
 *   <li>sentences are merged as split_paragraph merges them (token_max_n, token_min_n, merge_len; length in
 *       characters for Chinese, in tokens otherwise), but no segment ever exceeds {@link #budget()}: a longer
 *       sentence is split at commas, then at spaces, then by length;</li>
 *   <li>segments made only of punctuation are dropped.</li>
 * </ol>
 * Text with explicit {@code <|...|>} tokens is not normalised (as upstream) but is still cut to the budget, never
 * inside a token. With {@code normalize} false, the text is split but spoken as written. Pronunciation markup and
 * tags ({@link Markup}: {@code [j][ǐ]}, {@code [M][AY1]}, {@code [breath]}, {@code <strong>}) are never normalised
 * and never cut; each counts as one unit of a segment's length.
 */
public final class TextFrontend {
    private static final Pattern CHINESE = Pattern.compile("[\\u4e00-\\u9fff]");
    private static final Pattern ONLY_PUNCTUATION = Pattern.compile("^[\\p{P}\\p{S}\\s]*$");
    private static final Pattern TRAILING_COMMAS = Pattern.compile("[，,、]+$");
    private static final Pattern INVISIBLE = Pattern.compile("[\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F\\u200B-\\u200F\\u2028\\u2029\\u202A-\\u202E\\u2060-\\u2064\\uFEFF\\u00AD]");
    private static final Set<Character> ZH_MARKS = Set.of('。', '？', '！', '；', '：', '、', '.', '?', '!', ';');
    private static final Set<Character> EN_MARKS = Set.of('.', '?', '!', ';', ':');
    private static final Set<Character> CLOSING_QUOTES = Set.of('"', '”');
    private static final String PAUSES = "，,、；;：:";
    /** Full-width punctuation that Chinese text keeps as it is (the sentence marks and brackets). */
    private static final String KEEP_FULL_WIDTH = "，！？：；（）";

    /** What will be spoken: the language the text was read in ({@code zh}, {@code en} or {@code mixed}) and its segments. */
    public record Reading(String language, List<String> segments) {
    }

    public enum Language {
        AUTO, ZH, EN;

        /** {@code auto}, {@code zh} or {@code en} (case-insensitive; null is auto); otherwise null. */
        public static Language parse(String s) {
            if (s == null || s.isBlank()) {
                return AUTO;
            }
            return switch (s.strip().toLowerCase(Locale.ROOT)) {
                case "auto" -> AUTO;
                case "zh", "zh-cn", "cmn", "chinese" -> ZH;
                case "en", "en-us", "en-gb", "english" -> EN;
                default -> null;
            };
        }
    }

    private final ToIntFunction<String> tokenCount;
    private final int tokenMaxN;
    private final int tokenMinN;
    private final int mergeLen;
    private final int budget;
    private final TextNormalizer normalizer = new TextNormalizer();

    public TextFrontend(ToIntFunction<String> tokenCount, int tokenMaxN, int tokenMinN, int mergeLen) {
        this.tokenCount = tokenCount;
        this.tokenMaxN = tokenMaxN;
        this.tokenMinN = tokenMinN;
        this.mergeLen = mergeLen;
        this.budget = 2 * tokenMaxN;
    }

    public static boolean containsChinese(String text) {
        return CHINESE.matcher(text).find();
    }

    /**
     * The hard limit on one segment: twice split_paragraph's token_max_n, in its units (characters of Chinese
     * text, tokens otherwise; tokens for text with {@code <|...|>} tokens).
     */
    public int budget() {
        return budget;
    }

    /** The length of a segment in the budget's units. */
    public int length(String segment, boolean chineseUnits) {
        return chineseUnits ? segment.codePointCount(0, segment.length()) : tokenCount.applyAsInt(segment);
    }

    /** Text -> the segments that are synthesized independently and concatenated, in order. */
    public List<String> segments(String text) {
        return read(text, Language.AUTO, true).segments();
    }

    /** The segments synthesis speaks for {@code text}; empty when nothing in it can be spoken. */
    public Reading read(String text, Language language, boolean normalize) {
        String t = INVISIBLE.matcher(text).replaceAll("").strip();
        if (t.isEmpty()) {
            return new Reading(language == Language.EN ? "en" : language == Language.ZH ? "zh" : "en", List.of());
        }
        Markup.Masked markup = Markup.mask(t);   // pronunciation and tags: never read, never cut
        Reading r = readMasked(markup.text(), language, normalize);
        return new Reading(r.language(), markup.restoreAll(r.segments()));
    }

    private Reading readMasked(String t, Language language, boolean normalize) {
        if (t.contains("<|") && t.contains("|>")) {
            List<String> out = dropPunctuation(bound(t, false, 0));
            return new Reading(language == Language.AUTO ? (containsChinese(t) ? "zh" : "en") : language.name().toLowerCase(Locale.ROOT), out);
        }
        if (normalize) {
            t = foldFullWidth(t);
        }
        boolean zhText = language == Language.ZH || language == Language.AUTO && containsChinese(t);
        List<String> sentences = sentences(t, zhText);
        boolean sawZh = false;
        boolean sawEn = false;
        List<String> pieces = new ArrayList<>();
        for (int i = 0; i < sentences.size(); i++) {
            String s = sentences.get(i);
            boolean zh = language == Language.ZH || language == Language.AUTO && containsChinese(s);
            if (!ONLY_PUNCTUATION.matcher(s).matches()) {
                sawZh |= zh;
                sawEn |= !zh;
            }
            if (normalize) {
                s = normalizeClauses(s, zh, language);
            }
            if (zhText) {
                s = cleanChinese(s, zh, i == sentences.size() - 1);
            }
            pieces.addAll(bound(s, zhText, 0));
        }
        String lang = sawZh && sawEn ? "mixed" : sawZh ? "zh" : "en";
        return new Reading(lang, dropPunctuation(merge(pieces, zhText)));
    }

    /**
     * CosyVoice's text_normalize(text, split=False): the normalized text, not split into segments. CosyVoice's
     * inference_zero_shot applies it to the prompt transcript (add_zero_shot_spk does not).
     */
    public String normalize(String text) {
        String t = INVISIBLE.matcher(text).replaceAll("").strip();
        if (t.isEmpty() || (t.contains("<|") && t.contains("|>"))) {
            return text;
        }
        Markup.Masked markup = Markup.mask(t);
        t = foldFullWidth(markup.text());
        boolean zh = containsChinese(t);
        String s = normalizeClauses(t, zh, Language.AUTO);
        return markup.restore(zh ? cleanChinese(s, true, true) : s);
    }

    private static final Pattern CLAUSE_END = Pattern.compile("(?<=[，；]|, |; )");
    private static final Pattern ENGLISH_WORD = Pattern.compile("[A-Za-z]{2,}");

    /**
     * A Chinese sentence's clauses with English words and no Chinese character are read in English: in
     * "Meeting at 3pm，请准时。" the time is "three p m". Clauses without words (numbers, dates) keep the sentence's language.
     */
    private String normalizeClauses(String sentence, boolean zh, Language forced) {
        if (!zh || forced != Language.AUTO) {
            return normalizer.normalize(sentence, zh);
        }
        StringBuilder sb = new StringBuilder();
        for (String clause : CLAUSE_END.split(sentence)) {
            boolean english = !containsChinese(clause) && ENGLISH_WORD.matcher(clause).find();
            sb.append(normalizer.normalize(clause, !english));
        }
        return sb.toString();
    }

    private static List<String> dropPunctuation(List<String> parts) {
        List<String> out = new ArrayList<>();
        for (String p : parts) {
            if (!ONLY_PUNCTUATION.matcher(p).matches()) {
                out.add(p);
            }
        }
        return out;
    }

    /** Full-width letters, digits and symbols to ASCII; the ideographic space to a space. Chinese punctuation stays. */
    static String foldFullWidth(String text) {
        StringBuilder sb = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c >= '\uFF01' && c <= '\uFF5E' && KEEP_FULL_WIDTH.indexOf(c) < 0) {
                sb.append((char) (c - 0xFEE0));
            } else if (c == '\u3000') {
                sb.append(' ');
            } else if ((c == '：' || c == '．') && i > 0 && i + 1 < text.length() && isDigit(text.charAt(i - 1)) && isDigit(text.charAt(i + 1))) {
                sb.append(c == '：' ? ':' : '.');
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9' || c >= '０' && c <= '９';
    }

    /** CosyVoice's clean-up of Chinese text after normalisation. */
    private static String cleanChinese(String s, boolean chineseSentence, boolean last) {
        String t = s.replace("\n", "");
        t = replaceBlank(t);
        t = t.replace("²", "平方").replace("³", "立方");
        if (chineseSentence && t.endsWith(".")) {
            t = t.substring(0, t.length() - 1) + "。";
        }
        t = t.replace(" - ", "，");
        t = t.replace("（", "").replace("）", "").replace("【", "").replace("】", "").replace("`", "").replace("——", " ");
        if (last) {
            t = TRAILING_COMMAS.matcher(t).replaceAll("。");
        }
        return t;
    }

    /** Removes spaces except between two ASCII non-space characters (CosyVoice's replace_blank). */
    static String replaceBlank(String text) {
        StringBuilder sb = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == ' ') {
                boolean keep = i > 0 && i + 1 < text.length()
                        && isAsciiNonSpace(text.charAt(i + 1)) && isAsciiNonSpace(text.charAt(i - 1));
                if (keep) {
                    sb.append(c);
                }
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    private static boolean isAsciiNonSpace(char c) {
        return c < 128 && c != ' ';
    }

    /** split_paragraph's cut into utterances (each with its mark and a closing quote), never inside a token. */
    List<String> sentences(String text, boolean zh) {
        Set<Character> marks = zh ? ZH_MARKS : EN_MARKS;
        if (!marks.contains(text.charAt(text.length() - 1))) {
            text = text + (zh ? "。" : ".");
        }
        List<String> utts = new ArrayList<>();
        int st = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (!marks.contains(c) || insideToken(text, i)) {
                continue;
            }
            if (i > st) {
                utts.add(text.substring(st, i) + c);
            }
            if (i + 1 < text.length() && CLOSING_QUOTES.contains(text.charAt(i + 1)) && !utts.isEmpty()) {
                utts.set(utts.size() - 1, utts.get(utts.size() - 1) + text.charAt(i + 1));
                st = i + 2;
            } else {
                st = i + 1;
            }
        }
        if (st < text.length()) {
            utts.add(text.substring(st));
        }
        return utts;
    }

    /** A mark at {@code i} that belongs to a token: 3.14, 10:30, e.g., Dr., U.S., example.com, "...". */
    static boolean insideToken(String text, int i) {
        char c = text.charAt(i);
        char prev = i > 0 ? text.charAt(i - 1) : ' ';
        char next = i + 1 < text.length() ? text.charAt(i + 1) : ' ';
        if ((c == '.' || c == ':' || c == '：') && isDigit(prev) && isDigit(next)) {
            return true;
        }
        if (c != '.') {
            return false;
        }
        if (Character.isLetterOrDigit(next) && next < 128) {
            return true;   // a.m., e.g., example.com, v1.2
        }
        int w = i;
        while (w > 0 && (Character.isLetter(text.charAt(w - 1)) || text.charAt(w - 1) == '.')) {
            w--;
        }
        String word = text.substring(w, i + 1);
        if (word.length() == 2 && Character.isUpperCase(word.charAt(0)) && (w == 0 || text.charAt(w - 1) == ' ')
                && Character.isWhitespace(next) && i + 2 < text.length() && Character.isUpperCase(text.charAt(i + 2))) {
            return true;   // an initial: "J. Smith"
        }
        boolean atEnd = text.substring(i + 1).isBlank();
        boolean capitalFollows = Character.isWhitespace(next) && i + 2 < text.length() && Character.isUpperCase(text.charAt(i + 2));
        if (!atEnd && word.matches("(?:[A-Za-z]\\.){2,}")) {
            return !capitalFollows;   // p.m., U.S.: a sentence ends there only when a capital follows
        }
        for (NormTables.Abbreviation a : NormTables.get().abbreviations) {
            if (a.text().equals(word) && !atEnd) {
                // "etc." ends a sentence when a capital follows; the others never do
                return !a.mayEndSentence() || !capitalFollows;
            }
        }
        return false;
    }

    /** Splits a piece longer than the budget at pauses (level 0), then spaces (1), then by length (2). */
    List<String> bound(String s, boolean zhUnits, int level) {
        if (s.isEmpty() || length(s, zhUnits) <= budget) {
            return List.of(s);
        }
        if (level >= 2) {
            return cutByLength(s, zhUnits);
        }
        List<String> parts = splitAfter(s, level == 0 ? PAUSES : null);
        if (parts.size() <= 1) {
            return bound(s, zhUnits, level + 1);
        }
        List<String> out = new ArrayList<>();
        String cur = "";
        for (String p : parts) {
            for (String q : bound(p, zhUnits, level + 1)) {
                if (!cur.isEmpty() && length(cur + q, zhUnits) > budget) {
                    out.add(cur);
                    cur = "";
                }
                cur = cur + q;
            }
        }
        if (!cur.isEmpty()) {
            out.add(cur);
        }
        return out;
    }

    /** Pieces ending after each of {@code chars} (null: after each run of whitespace), never inside a {@code <|...|>} token. */
    private static List<String> splitAfter(String s, String chars) {
        List<String> out = new ArrayList<>();
        int st = 0;
        boolean inToken = false;
        for (int i = 0; i < s.length(); i++) {
            if (s.startsWith("<|", i)) {
                inToken = true;
            } else if (inToken && s.startsWith("|>", i)) {
                inToken = false;
            }
            if (inToken) {
                continue;
            }
            char c = s.charAt(i);
            boolean cut = chars == null ? Character.isWhitespace(c) && (i + 1 >= s.length() || !Character.isWhitespace(s.charAt(i + 1)))
                    : chars.indexOf(c) >= 0;
            if (cut && i + 1 < s.length()) {
                out.add(s.substring(st, i + 1));
                st = i + 1;
            }
        }
        out.add(s.substring(st));
        return out;
    }

    /** The longest prefixes within the budget, each cut at a code point boundary outside any {@code <|...|>} token. */
    private List<String> cutByLength(String s, boolean zhUnits) {
        List<String> out = new ArrayList<>();
        String rest = s;
        while (!rest.isEmpty() && length(rest, zhUnits) > budget) {
            int lo = 1;
            int hi = rest.length() - 1;
            int best = 0;
            while (lo <= hi) {   // the longest prefix within the budget
                int mid = (lo + hi) >>> 1;
                if (length(rest.substring(0, mid), zhUnits) <= budget) {
                    best = mid;
                    lo = mid + 1;
                } else {
                    hi = mid - 1;
                }
            }
            int cut = safeCut(rest, Math.max(best, 1));
            out.add(rest.substring(0, cut));
            rest = rest.substring(cut);
        }
        if (!rest.isEmpty()) {
            out.add(rest);
        }
        return out;
    }

    private static int safeCut(String s, int cut) {
        int c = cut;
        if (c < s.length() && Character.isLowSurrogate(s.charAt(c)) && c > 1) {
            c--;
        }
        int open = s.lastIndexOf("<|", c - 1);
        if (open >= 0 && open < c) {
            int close = s.indexOf("|>", open);
            if (close >= 0 && close + 2 > c) {
                c = open > 0 ? open : close + 2;   // before the token, or after it when it starts the piece
            }
        }
        return Math.max(1, Math.min(c, s.length()));
    }

    /** split_paragraph's merge of utterances into segments, never past the budget. */
    private List<String> merge(List<String> utts, boolean zhUnits) {
        List<String> result = new ArrayList<>();
        String cur = "";
        for (String utt : utts) {
            if (!cur.isEmpty() && (length(cur + utt, zhUnits) > tokenMaxN && length(cur, zhUnits) > tokenMinN
                    || length(cur + utt, zhUnits) > budget)) {
                result.add(cur);
                cur = "";
            }
            cur = cur + utt;
        }
        if (!cur.isEmpty()) {
            if (length(cur, zhUnits) < mergeLen && !result.isEmpty()
                    && length(result.get(result.size() - 1) + cur, zhUnits) <= budget) {
                result.set(result.size() - 1, result.get(result.size() - 1) + cur);
            } else {
                result.add(cur);
            }
        }
        return result;
    }
}
