package io.timbre.text;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * The normaliser's data: currencies, units, abbreviations, symbols, Chinese measure words and acronyms said as
 * words, read from tab-separated resources under {@code textnorm/}. Adding a currency or a unit is one line there.
 */
final class NormTables {
    record Currency(String key, boolean prefix, boolean suffix, String zh, String en, String enPlural,
                    String minor, String minorPlural) {
    }

    record Unit(String symbol, String zh, String en, String enPlural) {
        /** Chinese readings such as 百分之 go before the number. */
        boolean zhPrefix() {
            return zh.endsWith("之");
        }
    }

    record Abbreviation(String text, String reading, String beforeName, boolean mayEndSentence) {
    }

    record Symbol(String symbol, String zh, String en, String where) {
    }

    final List<Currency> currencies;
    final List<Unit> units;
    final List<Abbreviation> abbreviations;
    final List<Symbol> symbols;
    final List<String> classifiers;
    final Set<String> acronymWords;

    private NormTables() {
        currencies = rows("currencies.tsv").stream().map(r -> new Currency(r[0], !r[1].equals("suffix"),
                        !r[1].equals("prefix"), r[2], r[3], r[4], col(r, 5), col(r, 6)))
                .sorted(Comparator.comparingInt((Currency c) -> c.key().length()).reversed()).toList();
        units = rows("units.tsv").stream().map(r -> new Unit(r[0], r[1], r[2], r[3]))
                .sorted(Comparator.comparingInt((Unit u) -> u.symbol().length()).reversed()).toList();
        abbreviations = rows("abbreviations.tsv").stream().map(r -> new Abbreviation(r[0], r[1].replace("*", ""),
                        col(r, 2).isEmpty() ? null : col(r, 2), r[1].endsWith("*")))
                .sorted(Comparator.comparingInt((Abbreviation a) -> a.text().length()).reversed()).toList();
        symbols = rows("symbols.tsv").stream().map(r -> new Symbol(r[0], r[1], r[2], r[3])).toList();
        classifiers = lines("classifiers.txt").stream()
                .sorted(Comparator.comparingInt(String::length).reversed()).toList();
        acronymWords = new LinkedHashSet<>(lines("acronym-words.txt"));
    }

    private static final NormTables INSTANCE = new NormTables();

    static NormTables get() {
        return INSTANCE;
    }

    /** An alternation of the given texts, longest first, each quoted. */
    static String alternation(List<String> texts) {
        return texts.stream().sorted(Comparator.comparingInt(String::length).reversed()).map(Pattern::quote)
                .collect(Collectors.joining("|"));
    }

    private static String col(String[] r, int i) {
        return i < r.length ? r[i].strip() : "";
    }

    private static List<String[]> rows(String name) {
        List<String[]> out = new ArrayList<>();
        for (String line : lines(name)) {
            out.add(line.split("\t", -1));
        }
        return out;
    }

    private static List<String> lines(String name) {
        try (InputStream in = NormTables.class.getResourceAsStream("/textnorm/" + name)) {
            if (in == null) {
                throw new IllegalStateException("missing resource textnorm/" + name);
            }
            List<String> out = new ArrayList<>();
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                String l = line.stripTrailing();
                if (!l.isBlank() && !l.startsWith("#")) {
                    out.add(l);
                }
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
