package io.timbre.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.timbre.audio.WavCodec;
import io.timbre.engine.DeviceMemory;
import io.timbre.engine.FeatureExtractor;
import io.timbre.engine.ModelPack;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.SpeechRequest;
import io.timbre.engine.Synthesizer;
import io.timbre.text.TextTokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Engine benchmark (a command, not a test): synthesizes a fixed set of texts with each pack, greedy so that
 * Java and the Python reference do exactly the same work, and prints per-stage medians, speech tokens/s and
 * real-time factor; then times the Python reference pipeline (models/synthesize.py) on the same pack, prompt
 * and texts and prints Java/Python. Several packs print side by side in one table, each with its family (pack.json
 * {@code family}; a pack without one is {@code cosyvoice2}), so that CosyVoice 2 and 3 packs compare in one run:
 * {@code --pack DIR} repeated, or {@code --packs a,b}.
 *
 * <pre>./mvnw -q test-compile exec:java -Dexec.mainClass=io.timbre.bench.EngineBenchmark -Dexec.args="--packs models/tiny,models/bench --runs 3"
 * ./mvnw -q test-compile exec:java -Dexec.mainClass=io.timbre.bench.EngineBenchmark \
 *     -Dexec.args="--pack models/cosyvoice2 --pack models/cosyvoice3 --runs 3 --no-python"</pre>
 */
public final class EngineBenchmark {
    static final Path PROMPT = Path.of("models/tiny/golden/tone.wav");
    static final String PROMPT_TEXT = "A steady vowel for the speaker prompt.";
    /** Short texts: random-weight packs always run to the maximum of 20 speech tokens per text token. */
    static final List<String> TEXTS = List.of("Hi there.", "你好。", "Call 911!");

    record Stage(double features, double llm, double flow, double vocoder, double total, int tokens, double audio) {
    }

    public static void main(String[] args) throws Exception {
        List<String> packs = new ArrayList<>();
        int runs = 3;
        int threads = Runtime.getRuntime().availableProcessors();
        boolean python = true;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--packs" -> packs.addAll(List.of(args[++i].split(",")));
                case "--pack" -> packs.add(args[++i]);
                case "--runs" -> runs = Integer.parseInt(args[++i]);
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--no-python" -> python = false;
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + " (--pack DIR (repeated) or --packs a,b, --runs N --threads N --no-python)");
            }
        }
        if (packs.isEmpty()) {
            packs = List.of("models/tiny", "models/bench");
        }
        org.bytedeco.pytorch.global.torch.set_num_threads(threads);
        float[] prompt = WavCodec.decode(Files.readAllBytes(PROMPT)).samples();
        System.out.printf("engine benchmark: %d runs (median after 1 warm-up), %d intra-op threads, %d texts, prompt %s (%.2f s), greedy%n",
                runs, threads, TEXTS.size(), PROMPT, prompt.length / 16000.0);
        System.out.printf("%-14s %-11s %-6s %9s %9s %9s %9s %9s %8s %9s %7s%n", "pack", "family", "side", "features", "llm", "flow",
                "vocoder", "total", "tokens", "tokens/s", "RTF");
        for (String p : packs) {
            Path dir = Path.of(p);
            if (!Files.isDirectory(dir)) {
                System.out.printf("%-14s skipped: %s does not exist (make it: /usr/bin/python3 models/build_pack.py --size %s --out %s)%n",
                        dir.getFileName(), dir, dir.getFileName(), dir);
                continue;
            }
            String name = dir.getFileName().toString();
            String family = family(dir);
            Stage java = java(dir, prompt, runs, threads);
            print(name, family, "java", java);
            if (python && !family.equals("cosyvoice2")) {
                System.out.printf("%-14s %-11s python reference skipped: models/synthesize.py runs CosyVoice 2's loop only%n", name, family);
            } else if (python) {
                Stage py = python(dir, runs, threads);
                if (py != null) {
                    print(name, family, "python", py);
                    System.out.printf("%-14s %-11s %-6s %9.2f %9.2f %9.2f %9.2f %9.2f   (Java/Python time ratio; < 1 means Java is faster)%n",
                            name, family, "ratio", java.features / py.features, java.llm / py.llm, java.flow / py.flow,
                            java.vocoder / py.vocoder, java.total / py.total);
                }
            }
        }
    }

    static Stage java(Path dir, float[] prompt, int runs, int threads) {
        try (ModelPack pack = ModelPack.load(dir, "cpu");
             TextTokenizer tok = new TextTokenizer(dir.resolve(pack.manifest.moduleFiles().get("tokenizer")));
             Synthesizer synth = new Synthesizer(pack, 1, DeviceMemory.forDevice(pack.device, "never", "0"))) {
            FeatureExtractor fx = new FeatureExtractor(pack, tok);
            List<Stage> all = new ArrayList<>();
            for (int r = 0; r <= runs; r++) {
                double f = 0, l = 0, fl = 0, v = 0, t = 0, audio = 0;
                int tokens = 0;
                for (String text : TEXTS) {
                    long a = System.nanoTime();
                    try (SpeakerFeatures spk = fx.extract(prompt, 16000, PROMPT_TEXT)) {
                        long b = System.nanoTime();
                        Synthesizer.Result res = synth.synthesize(new SpeechRequest(spk, List.of(tok.encode(text)), new Synthesizer.Options(0, true)));
                        f += ms(b - a);
                        l += ms(res.timings().llm());
                        fl += ms(res.timings().flow());
                        v += ms(res.timings().vocoder());
                        t += ms(System.nanoTime() - a);
                        tokens += res.speechTokens();
                        audio += res.seconds();
                    }
                }
                if (r > 0) {
                    all.add(new Stage(f, l, fl, v, t, tokens, audio));
                }
            }
            return median(all);
        }
    }

    static Stage python(Path dir, int runs, int threads) throws IOException, InterruptedException {
        Path python = Path.of("/usr/bin/python3");
        Path script = Path.of("models/synthesize.py");
        if (!Files.isExecutable(python) || !Files.exists(script)) {
            System.out.println("python reference skipped: needs /usr/bin/python3 with python3-torch and " + script);
            return null;
        }
        double f = 0, l = 0, fl = 0, v = 0, t = 0, audio = 0;
        int tokens = 0;
        for (String text : TEXTS) {
            List<String> cmd = new ArrayList<>(Arrays.asList(python.toString(), script.toString(), "--pack", dir.toString(),
                    "--prompt", PROMPT.toString(), "--prompt-text", PROMPT_TEXT, "--text", text,
                    "--out", "/dev/null", "--repeat", String.valueOf(runs), "--threads", String.valueOf(threads), "--json"));
            Process proc = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            String out = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!proc.waitFor(30, TimeUnit.MINUTES) || proc.exitValue() != 0) {
                System.out.println("python reference failed: " + out);
                return null;
            }
            String last = out.strip().lines().reduce((a, b) -> b).orElse("{}");
            JsonNode j = new ObjectMapper().readTree(last);
            f += j.path("features_ms").asDouble();
            l += j.path("llm_ms").asDouble();
            fl += j.path("flow_ms").asDouble();
            v += j.path("vocoder_ms").asDouble();
            t += j.path("total_ms").asDouble();
            tokens += j.path("speech_tokens").asInt();
            audio += j.path("audio_seconds").asDouble();
        }
        return new Stage(f, l, fl, v, t, tokens, audio);
    }

    static void print(String pack, String family, String side, Stage s) {
        System.out.printf("%-14s %-11s %-6s %7.1fms %7.1fms %7.1fms %7.1fms %7.1fms %8d %9.1f %7.3f%n", pack, family, side, s.features,
                s.llm, s.flow, s.vocoder, s.total, s.tokens, s.tokens / (s.llm / 1000.0), s.total / 1000.0 / s.audio);
    }

    /** The model family a pack declares in pack.json ({@code family}); packs from before the field are CosyVoice 2. */
    static String family(Path dir) throws IOException {
        JsonNode manifest = new ObjectMapper().readTree(dir.resolve("pack.json").toFile());
        return manifest.path("family").asText("cosyvoice2");
    }

    static Stage median(List<Stage> all) {
        return new Stage(med(all, Stage::features), med(all, Stage::llm), med(all, Stage::flow), med(all, Stage::vocoder),
                med(all, Stage::total), all.get(0).tokens, all.get(0).audio);
    }

    static double med(List<Stage> all, java.util.function.ToDoubleFunction<Stage> f) {
        double[] v = all.stream().mapToDouble(f).sorted().toArray();
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    static double ms(long nanos) {
        return nanos / 1e6;
    }
}
