package io.timbre.text;

import com.ibm.icu.text.RuleBasedNumberFormat;
import com.ibm.icu.util.ULocale;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.function.ToIntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * CosyVoice 2's text frontend (text_normalize with split=True): light normalisation, then split_paragraph
 * into synthesis segments (token_max_n, token_min_n, merge_len; length in characters for Chinese, in tokens
 * otherwise), dropping segments made only of punctuation. Digit runs are spelled out with ICU's spellout rules
 * (English words; Chinese numerals for Chinese text), where CosyVoice uses inflect / wetext.
 */
public final class TextFrontend {
    private static final Pattern CHINESE = Pattern.compile("[\\u4e00-\\u9fff]");
    private static final Pattern DIGITS = Pattern.compile("\\d+");
    private static final Pattern ONLY_PUNCTUATION = Pattern.compile("^[\\p{P}\\p{S}\\s]*$");
    private static final Pattern TRAILING_COMMAS = Pattern.compile("[，,、]+$");
    private static final Set<Character> ZH_MARKS = Set.of('。', '？', '！', '；', '：', '、', '.', '?', '!', ';');
    private static final Set<Character> EN_MARKS = Set.of('.', '?', '!', ';', ':');
    private static final Set<Character> CLOSING_QUOTES = Set.of('"', '”');

    private final ToIntFunction<String> tokenCount;
    private final int tokenMaxN;
    private final int tokenMinN;
    private final int mergeLen;

    public TextFrontend(ToIntFunction<String> tokenCount, int tokenMaxN, int tokenMinN, int mergeLen) {
        this.tokenCount = tokenCount;
        this.tokenMaxN = tokenMaxN;
        this.tokenMinN = tokenMinN;
        this.mergeLen = mergeLen;
    }

    public static boolean containsChinese(String text) {
        return CHINESE.matcher(text).find();
    }

    /** Text -> the segments that are synthesized independently and concatenated, in order. */
    public List<String> segments(String text) {
        String t = text.strip();
        if (t.isEmpty()) {
            return List.of();
        }
        if (t.contains("<|") && t.contains("|>")) {
            return List.of(t);   // CosyVoice skips the frontend for text with explicit special tokens
        }
        List<String> parts = split(normalize(t), containsChinese(t));
        List<String> out = new ArrayList<>();
        for (String p : parts) {
            if (!ONLY_PUNCTUATION.matcher(p).matches()) {
                out.add(p);
            }
        }
        return out;
    }

    /**
     * CosyVoice's text_normalize(text, split=False): the normalized text, not split. CosyVoice's
     * inference_zero_shot applies it to the prompt transcript (add_zero_shot_spk does not).
     */
    public String normalize(String text) {
        if (text.isEmpty() || (text.contains("<|") && text.contains("|>"))) {
            return text;
        }
        String t = text.strip();
        if (containsChinese(t)) {
            t = t.replace("\n", "");
            t = replaceBlank(t);
            t = t.replace("²", "平方").replace("³", "立方");
            t = spellOutNumbers(t, ULocale.CHINESE);
            t = t.replace(".", "。").replace(" - ", "，");
            t = t.replace("（", "").replace("）", "").replace("【", "").replace("】", "").replace("`", "").replace("——", " ");
            return TRAILING_COMMAS.matcher(t).replaceAll("。");
        }
        return spellOutNumbers(t, ULocale.ENGLISH);
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

    static String spellOutNumbers(String text, ULocale locale) {
        RuleBasedNumberFormat f = new RuleBasedNumberFormat(locale, RuleBasedNumberFormat.SPELLOUT);
        Matcher m = DIGITS.matcher(text);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            String digits = m.group();
            String words = digits.length() > 15 ? digits.chars().mapToObj(c -> f.format(c - '0')).reduce((a, b) -> a + " " + b).orElse(digits)
                    : f.format(Long.parseLong(digits));
            m.appendReplacement(sb, Matcher.quoteReplacement(words));
        }
        m.appendTail(sb);
        return sb.toString();
    }

    /** split_paragraph(text, lang, token_max_n, token_min_n, merge_len, comma_split=False). */
    List<String> split(String text, boolean zh) {
        Set<Character> marks = zh ? ZH_MARKS : EN_MARKS;
        if (!marks.contains(text.charAt(text.length() - 1))) {
            text = text + (zh ? "。" : ".");
        }
        List<String> utts = new ArrayList<>();
        int st = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (!marks.contains(c)) {
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
        List<String> result = new ArrayList<>();
        String cur = "";
        for (String utt : utts) {
            if (length(cur + utt, zh) > tokenMaxN && length(cur, zh) > tokenMinN) {
                result.add(cur);
                cur = "";
            }
            cur = cur + utt;
        }
        if (!cur.isEmpty()) {
            if (length(cur, zh) < mergeLen && !result.isEmpty()) {
                result.set(result.size() - 1, result.get(result.size() - 1) + cur);
            } else {
                result.add(cur);
            }
        }
        return result;
    }

    private int length(String s, boolean zh) {
        return zh ? s.codePointCount(0, s.length()) : tokenCount.applyAsInt(s);
    }
}
