package io.timbre.text;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hand-written corpus (src/test/resources/textnorm/corpus.tsv): each input read through the synthesis frontend
 * must give the reading people say. Prints the accuracy of each class and every miss; each class must reach 95%.
 */
class TextNormalizationCorpusTest {
    static final double REQUIRED = 0.95;

    record Pair(String cls, String language, String input, String expected) {
    }

    static List<Pair> corpus() throws IOException {
        List<Pair> out = new ArrayList<>();
        try (InputStream in = TextNormalizationCorpusTest.class.getResourceAsStream("/textnorm/corpus.tsv")) {
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                String[] f = line.split("\t");
                out.add(new Pair(f[0], f[1], f[2], f[3]));
            }
        }
        return out;
    }

    /**
     * What is not heard does not count: runs of spaces, spaces next to a Chinese character (CosyVoice removes them),
     * and a final full stop (the frontend adds one to unterminated text).
     */
    static String canonical(String s) {
        return s.replaceAll("\\s+", " ").replaceAll(" ?([\\u3000-\\u303f\\u4e00-\\u9fff\\uff00-\\uffef]) ?", "$1")
                .strip().replaceAll("[。.]$", "");
    }

    @Test
    void requestThreadsShareOneFrontend() throws Exception {
        TextFrontend f = new TextFrontend(s -> s.getBytes(StandardCharsets.UTF_8).length, 80, 60, 20);
        List<String> inputs = corpus().stream().map(Pair::input).toList();
        List<List<String>> sequential = inputs.stream().map(f::segments).toList();
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(8);
        try {
            List<java.util.concurrent.Future<List<List<String>>>> runs = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                runs.add(pool.submit(() -> inputs.stream().map(f::segments).toList()));
            }
            for (java.util.concurrent.Future<List<List<String>>> r : runs) {
                org.junit.jupiter.api.Assertions.assertEquals(sequential, r.get(), "concurrent readings differ");
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void everyClassIsReadAsPeopleSayIt() throws IOException {
        TextFrontend f = new TextFrontend(s -> s.getBytes(StandardCharsets.UTF_8).length, 80, 60, 20);
        List<Pair> corpus = corpus();
        assertTrue(corpus.size() >= 200, "the corpus has " + corpus.size() + " pairs; at least 200 are required");
        Map<String, int[]> byClass = new TreeMap<>();
        List<String> misses = new ArrayList<>();
        for (Pair p : corpus) {
            String got = String.join("", f.read(p.input(), TextFrontend.Language.AUTO, true).segments());
            boolean ok = canonical(got).equals(canonical(p.expected()));
            int[] c = byClass.computeIfAbsent(p.cls(), k -> new int[2]);
            c[0] += ok ? 1 : 0;
            c[1]++;
            if (!ok) {
                misses.add(p.cls() + "\t" + p.input() + "\n\texpected " + p.expected() + "\n\tgot      " + got);
            }
        }
        StringBuilder report = new StringBuilder("Text normalization corpus, accuracy per class:\n");
        List<String> below = new ArrayList<>();
        int right = 0;
        for (Map.Entry<String, int[]> e : byClass.entrySet()) {
            int[] c = e.getValue();
            right += c[0];
            double acc = c[0] / (double) c[1];
            report.append(String.format("  %-14s %3d/%3d  %5.1f%%%n", e.getKey(), c[0], c[1], 100 * acc));
            if (acc < REQUIRED) {
                below.add(e.getKey());
            }
        }
        report.append(String.format("  %-14s %3d/%3d  %5.1f%%%n", "all", right, corpus.size(), 100.0 * right / corpus.size()));
        misses.forEach(m -> report.append("  miss: ").append(m).append('\n'));
        System.out.println(report);
        assertTrue(below.isEmpty(), "classes below " + (int) (REQUIRED * 100) + "%: " + below + "\n" + report);
    }
}
