package io.timbre.text;

import com.ibm.icu.text.DateFormatSymbols;
import com.ibm.icu.text.RuleBasedNumberFormat;
import com.ibm.icu.util.ULocale;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Written form to spoken form for one sentence, in Chinese or English: dates, times, money, phone numbers and
 * digit strings, IPs and versions, math, ranges, signed numbers, units and percentages, ordinals, decades and
 * years, fractions, decimals and cardinals, symbols, abbreviations and acronyms. Number words come from ICU's
 * spellout rules; currencies, units, abbreviations, symbols and measure words come from {@link NormTables}.
 * Every rule turns digits into words, so a later rule never sees the digits an earlier one read.
 */
public final class TextNormalizer {
    private static final NormTables T = NormTables.get();
    private static final String NUM = "(?:\\d{1,3}(?:,\\d{3})+|\\d+)(?:\\.\\d+)?";
    private static final String[] ZH_DIGITS = {"零", "一", "二", "三", "四", "五", "六", "七", "八", "九"};
    private static final String[] EN_DIGITS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
    private static final String[] MONTHS = DateFormatSymbols.getInstance(ULocale.ENGLISH).getMonths();
    private static final String MONTH_NAMES = "January|February|March|April|May|June|July|August|September|October|November|December"
            + "|Jan\\.?|Feb\\.?|Mar\\.?|Apr\\.?|Jun\\.?|Jul\\.?|Aug\\.?|Sept\\.?|Sep\\.?|Oct\\.?|Nov\\.?|Dec\\.?";
    private static final String AMPM = "(?:[ap]\\.m\\.|[AP]\\.M\\.|[ap]m|[AP]M)(?![A-Za-z])";
    private static final String SCALE = "(?:万亿|万|亿|千|百万|千万|trillion|billion|million|thousand|bn|[kKmMbB](?![A-Za-z]))";
    private static final String UNIT = "(?:" + NormTables.alternation(T.units.stream().map(NormTables.Unit::symbol).toList()) + ")";
    private static final String CURRENCY_PREFIX = "(?:" + NormTables.alternation(T.currencies.stream()
            .filter(NormTables.Currency::prefix).map(NormTables.Currency::key).toList()) + ")";
    private static final String CURRENCY_SUFFIX_CODE = "(?:" + NormTables.alternation(T.currencies.stream()
            .filter(c -> c.suffix() && c.key().matches("[A-Z]+")).map(NormTables.Currency::key).toList()) + ")";
    private static final Pattern ZH_TWO = Pattern.compile("(^|亿)二(?=[万亿])|二(?=千)|^二(?=百)");

    // ICU formatters are not thread-safe; request threads share this normaliser
    private static final ThreadLocal<RuleBasedNumberFormat> ZH_WORDS = ThreadLocal.withInitial(() ->
            new RuleBasedNumberFormat(ULocale.CHINESE, RuleBasedNumberFormat.SPELLOUT));
    private static final ThreadLocal<RuleBasedNumberFormat> EN_WORDS = ThreadLocal.withInitial(() ->
            new RuleBasedNumberFormat(ULocale.ENGLISH, RuleBasedNumberFormat.SPELLOUT));
    private final List<Rule> rules = new ArrayList<>();

    private record Rule(Pattern pattern, Read reading) {
    }

    /** A rule's reading of one match in {@code in}; null keeps the text as written. */
    private interface Read {
        String apply(Matcher m, boolean zh, String in);
    }

    public TextNormalizer() {
        rule("(?<![\\d.])(\\d{4})([-/.])(\\d{1,2})\\2(\\d{1,2})(?!\\.?\\d)", (m, zh, in) ->
                date(m.group(1), m.group(3), m.group(4), zh));
        rule("(?<![\\d.])(\\d{1,2})\\.(\\d{1,2})\\.(\\d{4})(?!\\.?\\d)", (m, zh, in) -> date(m.group(3), m.group(2), m.group(1), zh));
        rule("(?<![\\d/])(\\d{1,2})/(\\d{1,2})/(\\d{4})(?![\\d/])", (m, zh, in) -> date(m.group(3), m.group(1), m.group(2), zh));
        rule("\\b(" + MONTH_NAMES + ")\\s+(\\d{1,2})(?:st|nd|rd|th)?\\b(?:,?\\s*(\\d{4})\\b)?", (m, zh, in) ->
                monthDay(m.group(1), m.group(2), m.group(3)));
        rule("\\b(\\d{1,2})(?:st|nd|rd|th)?\\s+(" + MONTH_NAMES + ")(?:,?\\s*(\\d{4})\\b)?", (m, zh, in) -> {
            String md = monthDay(m.group(2), m.group(1), null);
            if (md == null) {
                return null;
            }
            String[] p = md.split(" ", 2);
            return "the " + p[1] + " of " + p[0] + (m.group(3) == null ? "" : ", " + yearEn(Long.parseLong(m.group(3))));
        });
        String time = "(?<![\\d.:])(\\d{1,2})[:：](\\d{2})(?:[:：](\\d{2}))?(?![\\d:])(?:\\s*(" + AMPM + "))?";
        rule(time + "\\s*(?:-|~|～|–|—|至|到|to)\\s*" + time.replace("(?<![\\d.:])", ""), (m, zh, in) -> {
            String a = time(m.group(1), m.group(2), m.group(3), m.group(4), zh);
            String b = time(m.group(5), m.group(6), m.group(7), m.group(8), zh);
            return a == null || b == null ? null : a + (zh ? "到" : " to ") + b;
        });
        rule(time, (m, zh, in) -> time(m.group(1), m.group(2), m.group(3), m.group(4), zh));
        rule("(?<![\\d.])(\\d{1,2})\\s*(" + AMPM + ")", (m, zh, in) -> time(m.group(1), "00", null, m.group(2), zh));
        rule("(?<![\\d.:])(\\d+)[:：](\\d+)(?![\\d:])", (m, zh, in) ->   // a ratio or a score: 16:9, 3:2
                number(m.group(1), zh) + (zh ? "比" : " to ") + number(m.group(2), zh));
        // phone numbers and codes: digit by digit
        rule("\\+(\\d{1,3})[\\s-]?(\\(?\\d{1,4}\\)?(?:[\\s-]?\\d{2,4}){2,4})(?![\\d])", (m, zh, in) ->
                (zh ? "加" : "plus ") + digitGroups(m.group(1), zh) + (zh ? "，" : ", ") + digitGroups(m.group(2), zh));
        rule("(?<![\\d.-])1-\\d{3}-\\d{3}-\\d{4}(?![\\d-])", (m, zh, in) -> digitGroups(m.group(), zh));
        rule("(?<![\\d.])(?:\\(\\d{3}\\)\\s?|\\d{3}[-\\s.])\\d{3}[-.\\s]\\d{4}(?![\\d])", (m, zh, in) -> digitGroups(m.group(), zh));
        rule("(?<![\\d.-])(?:0\\d{2,3}|400|800)-\\d{3,4}-?\\d{4}(?![\\d-])", (m, zh, in) -> digitGroups(m.group(), zh));
        rule("(?<![\\d.])1[3-9]\\d[-\\s]?\\d{4}[-\\s]?\\d{4}(?![\\d])", (m, zh, in) -> digitGroups(m.group(), zh));
        rule("(?<=点)0(?=\\d分)", (m, zh, in) -> "零");
        rule("(?<![A-Za-z])(电话|手机|号码|热线|编号|房间号|房间|分机|验证码|密码|尾号|工号|学号|账号|单号|车次|航班|邮编|QQ|[Pp]hone|[Tt]el|[Cc]all|[Dd]ial|ext\\.?|[Ee]xtension|PIN|[Cc]ode|[Rr]oom)"
                + "(\\s*(?:号码|号)?\\s*(?:是|为|:|：|is|number|#)?\\s*)(\\d{3,})(?![.,]?\\d)", (m, zh, in) -> m.group(1) + m.group(2) + digitGroups(m.group(3), zh));
        rule("(?<![\\d.,])(?:\\d{12,}|0\\d{2,})(?![.,]?\\d)", (m, zh, in) -> digitGroups(m.group(), zh));
        rule("(?<![\\d.])\\d{3,}(?=(?:急救|报警|火警|服务|客服)?(?:电话|热线))", (m, zh, in) -> digitGroups(m.group(), zh));
        rule("(?<![\\d.])(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})(?!\\.?\\d)", (m, zh, in) -> ip(m, zh));
        rule("(?<![\\w.])([vV]|[Vv]ersion\\s*|版本\\s*)(\\d+(?:\\.\\d+)+)(?!\\.?\\d)", (m, zh, in) ->
                (zh ? m.group(1).startsWith("版本") ? "版本" : "V" : m.group(1).length() > 1 ? m.group(1).strip() + " " : "version ") + version(m.group(2), zh));
        rule("(?<![\\d.])(\\d+\\.\\d+\\.\\d+)(?!\\.?\\d)", (m, zh, in) -> version(m.group(1), zh));
        // money
        rule("(?<![\\w$])(-|−)?(" + CURRENCY_PREFIX + ")\\s?(" + NUM + ")(?:\\s*(" + SCALE + "))?", (m, zh, in) ->
                money(m.group(1) != null, currency(m.group(2)), m.group(3), m.group(4), zh));
        rule("(?<![\\w.])(-|−)?(" + NUM + ")(?:\\s*(" + SCALE + "))?\\s?(" + CURRENCY_SUFFIX_CODE + ")\\b", (m, zh, in) ->
                money(m.group(1) != null, currency(m.group(4)), m.group(2), m.group(3), zh));
        // arithmetic: numbers joined by operators, at least one of them unambiguous
        rule("(?<![\\w.])-?" + NUM + "(?:\\s*[-+×÷*/=<>≤≥≠≈]\\s*-?" + NUM + ")*\\s*[+×÷*=<>≤≥≠≈]\\s*-?" + NUM
                + "(?:\\s*[-+×÷*/=<>≤≥≠≈]\\s*-?" + NUM + ")*(?!\\.?\\d)", (m, zh, in) -> expression(m.group(), zh));
        rule("(?<=[A-Za-z0-9])\\s*=\\s*(?=[A-Za-z0-9-])", (m, zh, in) -> zh ? "等于" : " equals ");
        rule("(?<=\\d)\\+(?![\\d\\s]*\\d)", (m, zh, in) -> zh ? "加" : " plus");
        rule("(?<![\\w.])(" + NUM + ")\\s?[xX×*]\\s?(" + NUM + ")(?!\\w|\\.\\d)", (m, zh, in) ->   // sizes: 3x3, 1920x1080
                number(m.group(1), zh) + (zh ? "乘" : " by ") + number(m.group(2), zh));
        rule("(?<![\\w.])(" + NUM + ")[xX×](?![A-Za-z0-9=\\s]*[=\\d])(?![A-Za-z0-9])", (m, zh, in) -> number(m.group(1), zh) + (zh ? "倍" : " times"));
        // decades and years
        rule("(?<![\\d'])(\\d{3}0)s\\b", (m, zh, in) -> zh ? digitsZh(m.group(1), false) + "年代"
                : plural(yearEn(Long.parseLong(m.group(1)))));
        rule("(?:'|’|\\b(?<=the )|\\b(?<=The ))(\\d0)s\\b", (m, zh, in) -> zh ? cardinalZh(Long.parseLong(m.group(1))) + "年代"
                : plural(EN_WORDS.get().format(Long.parseLong(m.group(1)))));
        rule("(?<![\\d.])(\\d{4})(?:\\s*[-~～–至到]\\s*(\\d{4}))?(?=\\s*年(?!龄|级|纪))", (m, zh, in) ->
                digitsZh(m.group(1), false) + (m.group(2) == null ? "" : "到" + digitsZh(m.group(2), false)));
        // ranges, with a unit or percent on either side
        rule("(?<![\\w.])((?:[-−])?" + NUM + ")\\s?(" + UNIT + ")?\\s*(?:-|~|～|–|—|至|到)\\s*([-−]?" + NUM + ")\\s?(" + UNIT + ")?(?![A-Za-z])",
                (m, zh, in) -> range(m, zh, in));
        rule("(?i:\\b(in|since|by|from|until|till|of|year|circa|before|after|during|to|and|around|early|late|mid|between))\\s+(\\d{4})(?![.,]?\\d|\\s*年)",
                (m, zh, in) -> {
                    long y = Long.parseLong(m.group(2));
                    return zh || y < 1000 || y > 2099 ? null : m.group(1) + " " + yearEn(y);
                });
        // signed numbers, units and percentages
        rule("(?<![\\w.])([-−±+])?(" + NUM + ")(?:\\s*(" + SCALE + "))?(\\s?)(" + UNIT + ")(?![A-Za-z])", (m, zh, in) ->
                measure(m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), zh));
        rule("(?<![\\w.])([-−±])(" + NUM + ")", (m, zh, in) -> sign(m.group(1), zh) + number(m.group(2), zh));
        // ordinals
        rule("第\\s*(\\d+)", (m, zh, in) -> "第" + cardinalZh(Long.parseLong(m.group(1))));
        rule("(?<![\\d.])(\\d+)(st|nd|rd|th)\\b", (m, zh, in) -> zh ? null : EN_WORDS.get().format(Long.parseLong(m.group(1)), "%spellout-ordinal"));
        rule("(?:#|\\bNo\\.\\s?|\\bno\\.\\s?)(\\d+)", (m, zh, in) -> (zh ? "" : "number ") + (zh ? cardinalZh(Long.parseLong(m.group(1))) + "号" : number(m.group(1), false)));
        // fractions
        rule("(?<![\\d/.])(\\d{1,4})/(\\d{1,4})(?![\\d/])", (m, zh, in) -> fraction(m.group(1), m.group(2), zh));
        // decimals and cardinals
        rule("(?<![\\d])" + NUM, (m, zh, in) -> {
            String after = m.end() < in.length() ? in.substring(m.end()) : "";
            return zh ? zhBefore(m.group(), after) : number(m.group(), false);
        });
        rule("\\d+", (m, zh, in) -> number(m.group(), zh));   // what no rule above took: digits after a decimal point, etc.
    }

    private void rule(String regex, Read reading) {
        rules.add(new Rule(Pattern.compile(regex), reading));
    }

    /** The spoken form of one sentence; {@code zh}: read in Chinese. Pronunciation markup ({@link Markup}) stays as written. */
    public String normalize(String sentence, boolean zh) {
        Markup.Masked markup = Markup.mask(sentence);
        return markup.restore(normalizeMasked(markup.text(), zh));
    }

    private String normalizeMasked(String sentence, boolean zh) {
        String s = sentence;
        for (Rule r : rules) {
            Matcher m = r.pattern().matcher(s);
            StringBuilder sb = null;
            while (m.find()) {
                String reading = r.reading().apply(m, zh, s);
                if (sb == null) {
                    sb = new StringBuilder(s.length() + 16);
                }
                m.appendReplacement(sb, Matcher.quoteReplacement(reading == null ? m.group() : spaced(s, m, reading, zh)));
            }
            if (sb != null) {
                m.appendTail(sb);
                s = sb.toString();
            }
        }
        s = symbols(s, zh);
        s = abbreviations(s);
        s = acronyms(s);
        return s.replaceAll(" {2,}", " ");
    }

    /** English readings get a space where they touch a letter; "3kg" becomes "three kilograms". */
    private static String spaced(String s, Matcher m, String reading, boolean zh) {
        if (zh) {
            return reading;
        }
        String out = reading;
        if (m.start() > 0 && Character.isLetterOrDigit(s.charAt(m.start() - 1)) && !reading.startsWith(" ")) {
            out = " " + out;
        }
        if (m.end() < s.length() && Character.isLetterOrDigit(s.charAt(m.end())) && !reading.endsWith(" ")) {
            out = out + " ";
        }
        return out;
    }

    // ------------------------------------------------------------------------------------------------ numbers

    String cardinalZh(long n) {
        return ZH_WORDS.get().format(n).replace('〇', '零');
    }

    /** A Chinese cardinal as said before 千/万/亿 or at its start before 百: 两千, 一万两千, 两百. */
    String countZh(long n) {
        return ZH_TWO.matcher(cardinalZh(n)).replaceAll("$1两");
    }

    String cardinalEn(long n) {
        return EN_WORDS.get().format(n);
    }

    /** Digits with optional grouping commas and decimals; more than 15 integer digits are read one by one. */
    String number(String text, boolean zh) {
        String t = text.replace(",", "");
        int dot = t.indexOf('.');
        String whole = dot < 0 ? t : t.substring(0, dot);
        String frac = dot < 0 ? "" : t.substring(dot + 1);
        if (zh) {
            String w = whole.isEmpty() ? "零" : whole.length() > 15 ? digitsZh(whole, false)
                    : frac.isEmpty() ? countZh(Long.parseLong(whole)) : cardinalZh(Long.parseLong(whole));
            return frac.isEmpty() ? w : w + "点" + digitsZh(frac, false);
        }
        String w = whole.isEmpty() ? "zero" : whole.length() > 15 ? digitsEn(whole, false) : cardinalEn(Long.parseLong(whole));
        return frac.isEmpty() ? w : w + " point " + digitsEn(frac, false);
    }

    /** A Chinese number given what follows it: 2 before a measure word is 两 (两个, 两点, 两公斤). */
    String zhBefore(String num, String after) {
        String t = num.replace(",", "");
        if (t.equals("2")) {
            for (String c : T.classifiers) {
                if (after.startsWith(c)) {
                    return "两";
                }
            }
            return "二";
        }
        return number(num, true);
    }

    String digitsZh(String digits, boolean yao) {
        StringBuilder sb = new StringBuilder();
        for (char c : digits.toCharArray()) {
            if (c >= '0' && c <= '9') {
                sb.append(c == '1' && yao ? "幺" : ZH_DIGITS[c - '0']);
            }
        }
        return sb.toString();
    }

    String digitsEn(String digits, boolean oh) {
        List<String> words = new ArrayList<>();
        for (char c : digits.toCharArray()) {
            if (c >= '0' && c <= '9') {
                words.add(c == '0' && oh ? "oh" : EN_DIGITS[c - '0']);
            }
        }
        return String.join(" ", words);
    }

    /** A phone number or code: digit by digit (1 as 幺 in Chinese, 0 as "oh" in English), groups kept as pauses. */
    String digitGroups(String text, boolean zh) {
        List<String> groups = new ArrayList<>();
        for (String g : text.split("[^0-9]+")) {
            if (!g.isEmpty()) {
                groups.add(zh ? digitsZh(g, true) : digitsEn(g, true));
            }
        }
        return String.join(zh ? "" : ", ", groups);
    }

    // ------------------------------------------------------------------------------------- dates and times

    private String date(String y, String mo, String d, boolean zh) {
        int month = Integer.parseInt(mo);
        int day = Integer.parseInt(d);
        if (month < 1 || month > 12 || day < 1 || day > 31) {
            return null;
        }
        if (zh) {
            return digitsZh(y, false) + "年" + cardinalZh(month) + "月" + cardinalZh(day) + "日";
        }
        return MONTHS[month - 1] + " " + EN_WORDS.get().format(day, "%spellout-ordinal") + ", " + yearEn(Long.parseLong(y));
    }

    private String monthDay(String monthName, String d, String y) {
        String key = monthName.replace(".", "").toLowerCase(Locale.ROOT);
        int day = Integer.parseInt(d);
        for (String full : MONTHS) {
            if (full.toLowerCase(Locale.ROOT).startsWith(key) && day >= 1 && day <= 31) {
                return full + " " + EN_WORDS.get().format(day, "%spellout-ordinal") + (y == null ? "" : ", " + yearEn(Long.parseLong(y)));
            }
        }
        return null;
    }

    String yearEn(long y) {
        return EN_WORDS.get().format(y, "%spellout-numbering-year");
    }

    private String time(String h, String mi, String se, String ampm, boolean zh) {
        int hour = Integer.parseInt(h);
        int minute = Integer.parseInt(mi);
        int second = se == null ? 0 : Integer.parseInt(se);
        if (hour > 24 || minute > 59 || second > 59) {
            return null;
        }
        boolean pm = ampm != null && ampm.toLowerCase(Locale.ROOT).startsWith("p");
        if (zh) {
            String out = (ampm == null ? "" : pm ? "下午" : "上午") + (hour == 2 ? "两" : cardinalZh(hour)) + "点";
            if (minute > 0 || second > 0) {
                out += (minute < 10 && minute > 0 ? "零" : "") + cardinalZh(minute) + "分";
            }
            if (second > 0) {
                out += cardinalZh(second) + "秒";
            }
            return out;
        }
        if (ampm == null && (hour > 12 && hour < 24 || hour == 0)) {   // 17:30 is said "five thirty p m"
            ampm = hour == 0 ? "am" : "pm";
            pm = hour != 0;
            hour = hour == 0 ? 12 : hour - 12;
        }
        String out = cardinalEn(hour);
        if (minute == 0 && second == 0) {
            out += ampm == null ? " o'clock" : "";
        } else if (minute < 10) {
            out += " oh " + cardinalEn(minute);
        } else {
            out += " " + cardinalEn(minute);
        }
        if (second > 0) {
            out += " and " + cardinalEn(second) + (second == 1 ? " second" : " seconds");
        }
        if (ampm != null) {
            out += pm ? " p m" : " a m";
        }
        return out;
    }

    // ------------------------------------------------------------------------------------- money and units

    private static NormTables.Currency currency(String key) {
        for (NormTables.Currency c : T.currencies) {
            if (c.key().equals(key)) {
                return c;
            }
        }
        throw new IllegalStateException("no currency " + key);
    }

    private String scale(String s, boolean zh) {
        if (s == null) {
            return "";
        }
        return switch (s) {
            case "k", "K", "thousand" -> zh ? "千" : " thousand";
            case "m", "M", "million" -> zh ? "百万" : " million";
            case "b", "B", "bn", "billion" -> zh ? "十亿" : " billion";
            case "trillion" -> zh ? "万亿" : " trillion";
            case "万" -> zh ? "万" : " ten thousand";
            case "亿" -> zh ? "亿" : " hundred million";
            case "千" -> zh ? "千" : " thousand";
            case "百万" -> zh ? "百万" : " million";
            case "千万" -> zh ? "千万" : " ten million";
            case "万亿" -> zh ? "万亿" : " trillion";
            default -> "";
        };
    }

    private String money(boolean negative, NormTables.Currency c, String amount, String scale, boolean zh) {
        String sign = negative ? (zh ? "负" : "minus ") : "";
        if (zh) {
            String scaled = westernScale(amount, scale);
            if (scaled != null) {
                return sign + zhBefore(scaled, c.zh()) + c.zh();
            }
            return sign + zhBefore(amount, scale(scale, true) + c.zh()) + scale(scale, true) + c.zh();
        }
        String t = amount.replace(",", "");
        if (scale != null) {
            return sign + number(amount, false) + scale(scale, false) + " " + c.enPlural();
        }
        int dot = t.indexOf('.');
        String whole = dot < 0 ? t : t.substring(0, dot);
        String frac = dot < 0 ? "" : t.substring(dot + 1);
        if (frac.length() > 2 || (!frac.isEmpty() && c.minor().isEmpty())) {
            return sign + number(amount, false) + " " + c.enPlural();
        }
        long units = whole.isEmpty() ? 0 : Long.parseLong(whole);
        long cents = frac.isEmpty() ? 0 : Long.parseLong((frac + "0").substring(0, 2));
        String major = cardinalEn(units) + " " + (units == 1 ? c.en() : c.enPlural());
        if (cents == 0) {
            return sign + major;
        }
        String minor = cardinalEn(cents) + " " + (cents == 1 ? c.minor() : c.minorPlural());
        return sign + (units == 0 ? minor : major + " and " + minor);
    }

    /** 200K, 4.5M, 2 billion: Chinese reads the value itself (二十万, 四百五十万); null for 万/亿 and no scale. */
    private static String westernScale(String amount, String scale) {
        if (scale == null) {
            return null;
        }
        int zeros = switch (scale) {
            case "k", "K", "thousand" -> 3;
            case "m", "M", "million" -> 6;
            case "b", "B", "bn", "billion" -> 9;
            case "trillion" -> 12;
            default -> -1;
        };
        if (zeros < 0) {
            return null;
        }
        java.math.BigDecimal v = new java.math.BigDecimal(amount.replace(",", "")).movePointRight(zeros).stripTrailingZeros();
        return v.scale() <= 0 ? v.toBigInteger().toString() : v.toPlainString();
    }

    private static NormTables.Unit unit(String symbol) {
        for (NormTables.Unit u : T.units) {
            if (u.symbol().equals(symbol)) {
                return u;
            }
        }
        return null;
    }

    private String sign(String s, boolean zh) {
        if (s == null) {
            return "";
        }
        return switch (s) {
            case "-", "−" -> zh ? "负" : "minus ";
            case "±" -> zh ? "正负" : "plus or minus ";
            case "+" -> zh ? "正" : "plus ";
            default -> "";
        };
    }

    private String measure(String sign, String num, String scale, String space, String symbol, boolean zh) {
        NormTables.Unit u = unit(symbol);
        // one-letter units only right after the number: "3s", "5m"; "at 5 a" or "2 m..." are not measures
        if (u == null || (!space.isEmpty() && symbol.length() == 1 && Character.isLetter(symbol.charAt(0)))) {
            return null;
        }
        if (zh) {
            String s = sign(sign, true);
            if ("负".equals(s) && u.zh().contains("度")) {
                s = "零下";
            }
            if (u.zhPrefix()) {
                return s + u.zh() + number(num, true) + scale(scale, true);
            }
            return s + zhBefore(num, scale(scale, true) + u.zh()) + scale(scale, true) + u.zh();
        }
        boolean one = num.equals("1") && scale == null && (sign == null || sign.equals("+"));
        return sign(sign, false) + number(num, false) + scale(scale, false) + " " + (one ? u.en() : u.enPlural());
    }

    private String range(Matcher m, boolean zh, String in) {
        String a = m.group(1).replace('−', '-');
        String b = m.group(3).replace('−', '-');
        if (a.startsWith("-") || b.startsWith("-")) {
            NormTables.Unit u = m.group(4) != null ? unit(m.group(4)) : m.group(2) != null ? unit(m.group(2)) : null;
            String neg = zh ? (u != null && u.zh().contains("度") ? "零下" : "负") : "minus ";
            String plain = range(a.replace("-", ""), m.group(2), b.replace("-", ""), m.group(4), zh, in.substring(m.end()));
            if (plain == null) {
                return null;
            }
            String sep = zh ? "到" : " to ";
            int cut = plain.indexOf(sep);
            return (a.startsWith("-") ? neg : "") + plain.substring(0, cut) + sep + (b.startsWith("-") ? neg : "")
                    + plain.substring(cut + sep.length());
        }
        return range(a, m.group(2), b, m.group(4), zh, in.substring(m.end()));
    }

    private String range(String a, String unitA, String b, String unitB, boolean zh, String after) {
        NormTables.Unit ua = unitA == null ? null : unit(unitA);
        NormTables.Unit ub = unitB == null ? null : unit(unitB);
        if (unitA != null && ua == null || unitB != null && ub == null) {
            return null;
        }
        if (zh) {
            String left;
            String right;
            if (ub != null && ub.zhPrefix()) {
                left = ub.zh() + number(a, true);
                right = ub.zh() + number(b, true);
            } else {
                left = (ua != null ? zhBefore(a, ua.zh()) + ua.zh() : ub != null ? zhBefore(a, ub.zh()) : zhBefore(a, after));
                right = ub != null ? zhBefore(b, ub.zh()) + ub.zh() : zhBefore(b, after);
            }
            return left + "到" + right;
        }
        boolean years = ua == null && ub == null && a.matches("1\\d{3}|20\\d{2}") && b.matches("1\\d{3}|20\\d{2}");
        String left = years ? yearEn(Long.parseLong(a)) : number(a, false) + (ua != null && ua != ub ? " " + ua.enPlural() : "");
        String right = years ? yearEn(Long.parseLong(b)) : number(b, false);
        NormTables.Unit u = ub != null ? ub : ua;
        return left + " to " + right + (u != null ? " " + u.enPlural() : "");
    }

    // ------------------------------------------------------------------------ fractions, math, IPs, versions

    private String fraction(String num, String den, boolean zh) {
        long n = Long.parseLong(num);
        long d = Long.parseLong(den);
        if (d == 0) {
            return null;
        }
        if (zh) {
            return cardinalZh(d) + "分之" + cardinalZh(n);
        }
        String denWord = d == 2 ? (n == 1 ? "half" : "halves") : d == 4 ? (n == 1 ? "quarter" : "quarters")
                : n == 1 ? EN_WORDS.get().format(d, "%spellout-ordinal") : plural(EN_WORDS.get().format(d, "%spellout-ordinal"));
        return cardinalEn(n) + " " + denWord;
    }

    private String expression(String text, boolean zh) {
        Matcher m = Pattern.compile(NUM + "|[-+×÷*/=<>≤≥≠≈]").matcher(text);
        List<String> out = new ArrayList<>();
        boolean expectNumber = true;
        boolean negative = false;
        while (m.find()) {
            String tok = m.group();
            if (Character.isDigit(tok.charAt(0))) {
                out.add((negative ? (zh ? "负" : "minus ") : "") + number(tok, zh));
                negative = false;
                expectNumber = false;
            } else if (expectNumber && tok.equals("-")) {
                negative = true;
            } else {
                NormTables.Symbol s = T.symbols.stream().filter(x -> x.symbol().equals(tok)).findFirst().orElseThrow();
                out.add(zh ? s.zh() : s.en());
                expectNumber = true;
            }
        }
        return String.join(zh ? "" : " ", out);
    }

    private String ip(Matcher m, boolean zh) {
        List<String> parts = new ArrayList<>();
        for (int i = 1; i <= 4; i++) {
            if (Integer.parseInt(m.group(i)) > 255) {
                return null;
            }
            String o = m.group(i);
            parts.add(zh ? digitsZh(o, true) : o.length() < 3 ? cardinalEn(Long.parseLong(o)) : digitsEn(o, false));
        }
        return String.join(zh ? "点" : " dot ", parts);
    }

    private String version(String v, boolean zh) {
        List<String> parts = new ArrayList<>();
        for (String p : v.split("\\.")) {
            parts.add(p.length() > 15 ? p : zh ? cardinalZh(Long.parseLong(p)) : cardinalEn(Long.parseLong(p)));
        }
        return String.join(zh ? "点" : " point ", parts);
    }

    static String plural(String words) {
        if (words.endsWith("y")) {
            return words.substring(0, words.length() - 1) + "ies";
        }
        return words + "s";
    }

    // ---------------------------------------------------------------- symbols, abbreviations and acronyms

    private static String symbols(String s, boolean zh) {
        String out = s;
        for (NormTables.Symbol sym : T.symbols) {
            if (!sym.where().equals("always") || !out.contains(sym.symbol())) {
                continue;
            }
            if (zh) {
                out = out.replace(sym.symbol(), sym.zh());
            } else {   // a space on each side, none doubled
                String in = out;
                out = Pattern.compile("\\s*" + Pattern.quote(sym.symbol()) + "\\s*").matcher(out)
                        .replaceAll(m -> Matcher.quoteReplacement((m.start() > 0 ? " " : "") + sym.en()
                                + (m.end() < in.length() ? " " : "")));
            }
        }
        return out;
    }

    private static final Pattern CAPITALIZED = Pattern.compile("\\s+[A-Z][a-z]");

    private static String abbreviations(String s) {
        String out = s;
        for (NormTables.Abbreviation a : T.abbreviations) {
            int from = 0;
            while (true) {
                int i = out.indexOf(a.text(), from);
                if (i < 0) {
                    break;
                }
                int end = i + a.text().length();
                boolean startOk = i == 0 || !Character.isLetter(out.charAt(i - 1)) && out.charAt(i - 1) != '.';
                boolean endOk = end == out.length() || !Character.isLetterOrDigit(out.charAt(end));
                if (!startOk || !endOk) {
                    from = end;
                    continue;
                }
                String rest = out.substring(end);
                String reading = a.beforeName() != null && CAPITALIZED.matcher(rest).lookingAt() ? a.beforeName() : a.reading();
                if (rest.isBlank() || rest.matches("\\s*[\"”’)]*\\s*")) {
                    reading = reading + ".";   // the abbreviation's period also ended the sentence
                }
                out = out.substring(0, i) + reading + rest;
                from = i + reading.length();
            }
        }
        return out;
    }

    private static final Pattern DOTTED = Pattern.compile("\\b((?:[A-Z]\\.){2,})");
    private static final Pattern ACRONYM = Pattern.compile("(?<![A-Za-z])([A-Z]{2,5})(s?)(?![A-Za-z])");

    private static String acronyms(String s) {
        String out = DOTTED.matcher(s).replaceAll(m -> {
            String letters = m.group(1).replace(".", "");
            boolean end = m.end() == s.length() || s.substring(m.end()).isBlank();
            return String.join(" ", letters.split("")) + (end ? "." : "");
        });
        return ACRONYM.matcher(out).replaceAll(m -> {
            String w = m.group(1);
            if (T.acronymWords.contains(w)) {
                return m.group();
            }
            return Matcher.quoteReplacement(String.join(" ", w.split("")) + m.group(2));
        });
    }
}
