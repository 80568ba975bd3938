package io.timbre.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Load benchmark (a command, not a test). Starts the packaged service ({@code target/quarkus-app}) as a separate
 * process on loopback with the given pack and the embedded PostgreSQL, registers one speaker, and drives streamed
 * {@code POST /v1/tts} from 1, 2, 4, 8 and 16 concurrent clients (closed loop: each client sends its next request when
 * the previous one has been read; at least {@code --min-requests} per level), for two texts (one long single-segment
 * text and a multi-sentence text) and both streaming units side by side, one after the other at each level of the
 * same service: {@code "stream_unit":"hop"} (chunked streaming at CosyVoice's token hops) and
 * {@code "stream_unit":"segment"} (one chunk per segment). One service per mode, by default {@code batched}
 * (continuous batching of the LLM, each flow alone, the service's defaults) and {@code unbatched}
 * ({@code timbre.engine.batching=false}: one request at a time, as the reference servers do); {@code --modes} may add
 * {@code flow-batched} (also the flows' estimator steps stacked across requests, {@code timbre.engine.flow-batch} =
 * {@code --flow-batch}, default 8).
 *
 * <p>Whether the service streams by hop is measured, not assumed: its warm-up requests with {@code "hop"} must be
 * answered, and the first audio of the single-segment text must come before {@value #CHUNKED_BELOW} of the whole
 * answer's time (per-segment streaming sends it with the whole clip); otherwise the hop columns say why they are
 * empty. Prints, per mode, text, concurrency and unit: requests/s, latency p50/p95/p99, time to first audio (the first
 * byte after the 44-byte WAV header) p50/p95/p99 and its share of the latency, real-time factor, errors and the
 * service's resident memory; then first audio of both units side by side, and the batched/unbatched throughput ratio.
 *
 * <p>{@code --service DIR} runs another build's packaged service ({@code DIR/quarkus-run.jar}, default
 * {@code target/quarkus-app}) under the same clients, for example an earlier commit's, with a pack that build reads:
 * the same harness then measures both engines.
 *
 * <pre>./mvnw -q -DskipTests package exec:java -Dexec.mainClass=io.timbre.bench.LoadBenchmark \
 *     -Dexec.args="--pack models/bench --clients 1,2,4,8,16 --min-requests 4"</pre>
 */
public final class LoadBenchmark {
    /** The packaged app refuses the published dev key: the benchmark gives the service a fresh one. */
    static final String ADMIN_KEY = io.timbre.account.ApiKeys.generate();
    /** First audio before this share of the latency (single-segment text, warm-up) means the service streams by hop. */
    static final double CHUNKED_BELOW = 0.6;
    static final List<String> UNITS = List.of("hop", "segment");

    record Sample(long latencyNanos, long firstAudioNanos, double audioSeconds, boolean ok) {
    }

    record Level(String mode, String text, String unit, int clients, int requests, double seconds, List<Sample> samples,
                 long rssKb) {
        double throughput() {
            return samples.stream().filter(Sample::ok).count() / seconds;
        }

        long errors() {
            return samples.stream().filter(s -> !s.ok()).count();
        }
    }

    /** A text of the benchmark: its label and what is spoken. */
    record Text(String label, String text) {
    }

    public static void main(String[] args) throws Exception {
        Path pack = Path.of("models/bench");
        Path service = Path.of("target/quarkus-app");
        Path prompt = Path.of("models/tiny/golden/tone.wav");
        String promptText = "A steady vowel for the speaker prompt.";
        // On the bench pack (random weights, byte vocabulary) every text token yields 20 speech tokens: "Hi there." is
        // one segment of 180 speech tokens (7.2 s, 7 hops); the multi-sentence text is 3 sentences, 440 speech tokens.
        String single = "Hi there.";
        String multi = "Hi. How are you? Fine.";
        int[] clients = {1, 2, 4, 8, 16};
        int minRequests = 4;
        int flowBatch = 8;
        List<String> modes = List.of("batched", "unbatched");
        List<String> units = UNITS;
        List<String> textLabels = List.of("single", "multi");
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--pack" -> pack = Path.of(args[++i]);
                case "--service" -> service = Path.of(args[++i]);
                case "--prompt" -> prompt = Path.of(args[++i]);
                case "--text", "--single-text" -> single = args[++i];
                case "--multi-text" -> multi = args[++i];
                case "--texts" -> textLabels = List.of(args[++i].split(","));
                case "--units" -> units = List.of(args[++i].split(","));
                case "--clients" -> clients = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
                case "--min-requests" -> minRequests = Integer.parseInt(args[++i]);
                case "--modes" -> modes = List.of(args[++i].split(","));
                case "--flow-batch" -> flowBatch = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i] + " (use --pack, --prompt, "
                        + "--single-text, --multi-text, --texts single,multi, --units hop,segment, --clients, --min-requests, --modes batched,flow-batched,unbatched, --flow-batch 8, --service DIR)");
            }
        }
        if (!Files.isRegularFile(pack.resolve("pack.json"))) {
            System.err.println("no model pack at " + pack + "; build it: /usr/bin/python3 models/build_pack.py --size bench --out " + pack);
            System.exit(2);
        }
        Path jar = service.resolve("quarkus-run.jar").toAbsolutePath();
        if (!Files.isRegularFile(jar)) {
            System.err.println("no packaged service at " + jar + "; run ./mvnw -DskipTests package first");
            System.exit(2);
        }
        List<Text> texts = new ArrayList<>();
        for (String t : textLabels) {
            texts.add(switch (t) {
                case "single" -> new Text("single", single);
                case "multi" -> new Text("multi", multi);
                default -> throw new IllegalArgumentException("--texts takes single and/or multi, not " + t);
            });
        }
        System.out.printf(Locale.ROOT, "load benchmark: service %s, pack %s, prompt %s, texts %s, units %s, at least %d requests per level, %d cores%n",
                jar, pack, prompt, texts, units, minRequests, Runtime.getRuntime().availableProcessors());
        List<Level> levels = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        for (String mode : modes) {
            if (!List.of("batched", "flow-batched", "unbatched").contains(mode)) {
                throw new IllegalArgumentException("--modes takes batched, flow-batched and/or unbatched, not " + mode);
            }
            levels.addAll(run(mode, jar, pack, prompt, promptText, texts, units, clients, minRequests, flowBatch, notes));
        }
        print(levels, notes);
    }

    static List<Level> run(String mode, Path jar, Path pack, Path prompt, String promptText, List<Text> texts, List<String> units,
                           int[] clients, int minRequests, int flowBatch, List<String> notes) throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Path data = Files.createTempDirectory("timbre-load-");
        Path log = data.resolve("service.log");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dquarkus.profile=embedded", "-Dquarkus.http.port=" + port, "-Dquarkus.shutdown.delay=0s",
                "-Dtimbre.admin-key=" + ADMIN_KEY,
                "-Dtimbre.data-dir=" + data, "-Dtimbre.model-pack=" + pack.toAbsolutePath(),
                "-Dtimbre.engine.batching=" + !mode.equals("unbatched"), "-Dquarkus.log.level=WARN",
                // closed-loop clients wait as long as it takes: no request is refused for waiting in this benchmark
                "-Dtimbre.engine.queue-timeout=30m"));
        if (mode.equals("flow-batched")) {   // only then: builds from before flow batching do not know the setting
            cmd.add("-Dtimbre.engine.flow-batch=" + flowBatch);
        }
        cmd.addAll(List.of("-jar", jar.toString()));
        Process service = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        URI base = URI.create("http://127.0.0.1:" + port);
        List<Level> out = new ArrayList<>();
        try {
            long t0 = System.nanoTime();
            waitReady(http, base, service, log);
            System.out.printf(Locale.ROOT, "[%s] service pid %d ready in %.1f s%n", mode, service.pid(), (System.nanoTime() - t0) / 1e9);
            String key = createUser(http, base);
            String speaker = register(http, base, key, prompt, promptText);
            ObjectMapper json = new ObjectMapper();
            List<String> served = new ArrayList<>();
            for (String unit : units) {
                // warm-up, and the probe: is this unit served, and is it chunked?
                String body = body(json, texts.get(0).text(), speaker, unit);
                Sample w = null;
                for (int i = 0; i < 2; i++) {
                    w = request(http, base, key, body);
                }
                if (!w.ok()) {
                    String why = "[" + mode + "] stream_unit \"" + unit + "\" not served (the warm-up request failed; see " + log + ")";
                    if (unit.equals("segment")) {
                        throw new IllegalStateException(why);
                    }
                    notes.add(why);
                    continue;
                }
                double share = w.firstAudioNanos() / (double) w.latencyNanos();
                if (unit.equals("hop") && texts.get(0).label().equals("single") && share >= CHUNKED_BELOW) {
                    notes.add(String.format(Locale.ROOT, "[%s] stream_unit \"hop\" is not chunked by this build: the first audio "
                            + "of the single-segment text came at %.0f%% of the answer's time (per-segment streaming); hop columns omitted",
                            mode, 100 * share));
                    continue;
                }
                System.out.printf(Locale.ROOT, "[%s] unit %s served; warm-up: first audio at %.0f%% of %.2f s%n", mode, unit,
                        100 * share, w.latencyNanos() / 1e9);
                served.add(unit);
            }
            for (Text text : texts) {
                for (int i = 0; i < served.size() && !text.equals(texts.get(0)); i++) {
                    request(http, base, key, body(json, text.text(), speaker, served.get(i)));   // warm-up of this text
                }
            }
            long rssStart = rssKb(service.pid());
            System.out.printf(Locale.ROOT, "[%s] after warm-up: RSS %.1f MB%n", mode, rssStart / 1024.0);
            for (Text text : texts) {
                for (int c : clients) {
                    for (String unit : served) {
                        Level l = level(mode, text.label(), unit, http, base, key, body(json, text.text(), speaker, unit), c,
                                (minRequests + c - 1) / c, service.pid());
                        out.add(l);
                        System.out.printf(Locale.ROOT, "[%s] %-6s %2d clients %-7s: %5.2f req/s, p50 %.2f s, first audio p50 %.2f s, "
                                        + "errors %d, RSS %.1f MB%n", mode, text.label(), c, unit, l.throughput(),
                                pct(l.samples(), Sample::latencyNanos, 50) / 1e9, pct(l.samples(), Sample::firstAudioNanos, 50) / 1e9,
                                l.errors(), l.rssKb() / 1024.0);
                    }
                }
            }
        } finally {
            service.destroy();
            if (!service.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
                service.destroyForcibly();
            }
        }
        return out;
    }

    static String body(ObjectMapper json, String text, String speaker, String unit) throws Exception {
        return "{\"text\":" + json.writeValueAsString(text) + ",\"speakerId\":\"" + speaker + "\",\"stream\":true,\"stream_unit\":\""
                + unit + "\"}";
    }

    static Level level(String mode, String text, String unit, HttpClient http, URI base, String key, String body, int clients,
                       int perClient, long pid) throws Exception {
        List<Sample> samples = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            Thread t = new Thread(() -> {
                try {
                    start.await();
                    for (int i = 0; i < perClient; i++) {
                        samples.add(request(http, base, key, body));
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            t.start();
            threads.add(t);
        }
        double[] before = estimator(http, base);
        long t0 = System.nanoTime();
        start.countDown();
        for (Thread t : threads) {
            t.join();
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        double[] after = estimator(http, base);
        double calls = after[0] - before[0];
        double steps = after[2] - before[2];
        if (calls > 0 && steps > 0) {
            System.out.printf(Locale.ROOT, "[%s] %s %d clients %s: %.0f LLM decode steps, mean rows per step %.2f; %.0f flow "
                            + "estimator calls for %.0f steps (mean stack %.2f)%n", mode, text, clients, unit, steps,
                    (after[3] - before[3]) / steps, calls, after[1] - before[1], (after[1] - before[1]) / calls);
        }
        return new Level(mode, text, unit, clients, clients * perClient, seconds, new ArrayList<>(samples), rssKb(pid));
    }

    /**
     * From the service's /q/metrics: flow estimator calls and the steps they served, LLM decode steps and rows summed
     * over them (zeros where it does not say).
     */
    static double[] estimator(HttpClient http, URI base) {
        double[] v = new double[4];
        try {
            String text = http.send(HttpRequest.newBuilder(base.resolve("/q/metrics")).header("Authorization", "Bearer " + ADMIN_KEY).GET().build(),
                    HttpResponse.BodyHandlers.ofString()).body();
            List<String> names = List.of("timbre_flow_estimator_calls", "timbre_flow_steps", "timbre_scheduler_steps",
                    "timbre_scheduler_row_steps");
            for (String line : text.split("\n")) {
                int space = line.indexOf(' ');
                int i = space < 0 ? -1 : names.indexOf(line.substring(0, space));
                if (i >= 0) {
                    v[i] = Double.parseDouble(line.substring(space + 1).trim());
                }
            }
        } catch (java.io.IOException | RuntimeException e) {
            return v;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return v;
    }

    /** One streamed request: latency to the last byte, time to the first audio byte after the 44-byte header. */
    static Sample request(HttpClient http, URI base, String key, String body) {
        long t0 = System.nanoTime();
        try {
            HttpRequest r = HttpRequest.newBuilder(base.resolve("/v1/tts")).header("Authorization", "Bearer " + key)
                    .header("Content-Type", "application/json").timeout(Duration.ofMinutes(10))
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build();
            HttpResponse<InputStream> resp = http.send(r, HttpResponse.BodyHandlers.ofInputStream());
            long bytes = 0;
            long first = 0;
            byte[] buf = new byte[64 * 1024];
            try (InputStream in = resp.body()) {
                for (int n = in.read(buf); n >= 0; n = in.read(buf)) {
                    bytes += n;
                    if (first == 0 && bytes > 44) {
                        first = System.nanoTime() - t0;
                    }
                }
            }
            long latency = System.nanoTime() - t0;
            boolean ok = resp.statusCode() == 200 && bytes > 44;
            return new Sample(latency, first, (bytes - 44) / 2.0 / 24000.0, ok);
        } catch (IOException | InterruptedException e) {
            return new Sample(System.nanoTime() - t0, 0, 0, false);
        }
    }

    static void waitReady(HttpClient http, URI base, Process service, Path log) throws Exception {
        long deadline = System.nanoTime() + Duration.ofMinutes(5).toNanos();
        while (System.nanoTime() < deadline) {
            if (!service.isAlive()) {
                throw new IllegalStateException("the service exited (" + service.exitValue() + "); see " + log);
            }
            try {
                if (http.send(HttpRequest.newBuilder(base.resolve("/q/health/ready")).build(),
                        HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
                    return;
                }
            } catch (IOException e) {
                // not listening yet
            }
            Thread.sleep(500);
        }
        throw new IllegalStateException("the service did not become ready in 5 minutes; see " + log);
    }

    static String createUser(HttpClient http, URI base) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(base.resolve("/v1/users"))
                .header("Authorization", "Bearer " + ADMIN_KEY).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"name\":\"load-" + UUID.randomUUID() + "\"}")).build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 201) {
            throw new IllegalStateException("creating the user: " + r.statusCode() + " " + r.body());
        }
        return new ObjectMapper().readTree(r.body()).get("apiKey").asText();
    }

    static String register(HttpClient http, URI base, String key, Path prompt, String promptText) throws Exception {
        String boundary = "timbre" + UUID.randomUUID();
        var body = new java.io.ByteArrayOutputStream();
        String head = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nload\r\n"
                + "--" + boundary + "\r\nContent-Disposition: form-data; name=\"promptText\"\r\n\r\n" + promptText + "\r\n"
                + "--" + boundary + "\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"prompt.wav\"\r\n"
                + "Content-Type: audio/wav\r\n\r\n";
        body.write(head.getBytes(StandardCharsets.UTF_8));
        body.write(Files.readAllBytes(prompt));
        body.write(("\r\n--" + boundary + "--\r\n").getBytes(StandardCharsets.UTF_8));
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(base.resolve("/v1/speakers"))
                .header("Authorization", "Bearer " + key).header("Content-Type", "multipart/form-data; boundary=" + boundary)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body.toByteArray())).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 201) {
            throw new IllegalStateException("registering the speaker: " + r.statusCode() + " " + r.body());
        }
        JsonNode n = new ObjectMapper().readTree(r.body());
        return n.get("id").asText();
    }

    static long rssKb(long pid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException | NumberFormatException e) {
            // not Linux, or the process is gone
        }
        return -1;
    }

    static double pct(List<Sample> samples, java.util.function.ToLongFunction<Sample> f, double p) {
        long[] v = samples.stream().filter(Sample::ok).mapToLong(f).sorted().toArray();
        if (v.length == 0) {
            return Double.NaN;
        }
        int i = (int) Math.ceil(p / 100.0 * v.length) - 1;   // nearest rank
        return v[Math.max(0, Math.min(v.length - 1, i))];
    }

    static void print(List<Level> levels, List<String> notes) {
        System.out.println();
        notes.forEach(n -> System.out.println("note: " + n));
        System.out.println();
        System.out.println("| mode | text | clients | unit | requests | req/s | p50 s | p95 s | p99 s | first audio p50 s | p95 s | p99 s "
                + "| p95/p50 | first audio / latency (p50) | RTF | errors | RSS MB |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (Level l : levels) {
            List<Sample> s = l.samples();
            double p50 = pct(s, Sample::latencyNanos, 50) / 1e9;
            double f50 = pct(s, Sample::firstAudioNanos, 50) / 1e9;
            double f95 = pct(s, Sample::firstAudioNanos, 95) / 1e9;
            double rtf = s.stream().filter(Sample::ok).mapToDouble(x -> x.latencyNanos() / 1e9 / x.audioSeconds()).average().orElse(Double.NaN);
            System.out.printf(Locale.ROOT, "| %s | %s | %d | %s | %d | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% | %.2f | %d | %.1f |%n",
                    l.mode(), l.text(), l.clients(), l.unit(), l.requests(), l.throughput(), p50,
                    pct(s, Sample::latencyNanos, 95) / 1e9, pct(s, Sample::latencyNanos, 99) / 1e9, f50, f95,
                    pct(s, Sample::firstAudioNanos, 99) / 1e9, f95 / f50, 100 * f50 / p50, rtf, l.errors(), l.rssKb() / 1024.0);
        }

        System.out.println();
        System.out.println("Time to first audio, chunked (hop) and per-segment side by side (s; '-': not served):");
        System.out.println("| mode | text | clients | hop p50 | hop p95 | hop p99 | segment p50 | segment p95 | segment p99 | hop total p50 | segment total p50 |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|---|");
        Map<String, List<Level>> rows = new LinkedHashMap<>();
        for (Level l : levels) {
            rows.computeIfAbsent(l.mode() + "|" + l.text() + "|" + l.clients(), k -> new ArrayList<>()).add(l);
        }
        rows.forEach((k, ls) -> {
            Level hop = ls.stream().filter(l -> l.unit().equals("hop")).findFirst().orElse(null);
            Level seg = ls.stream().filter(l -> l.unit().equals("segment")).findFirst().orElse(null);
            System.out.printf(Locale.ROOT, "| %s | %s | %s | %s | %s |%n", k.replace("|", " | "), firstAudio(hop), firstAudio(seg),
                    cell(hop, Sample::latencyNanos, 50), cell(seg, Sample::latencyNanos, 50));
        });

        System.out.println();
        for (Level b : levels) {
            if (b.mode().equals("unbatched")) {
                continue;
            }
            levels.stream().filter(u -> u.mode().equals("unbatched") && u.clients() == b.clients() && u.text().equals(b.text())
                            && u.unit().equals(b.unit())).findFirst().ifPresent(u ->
                    System.out.printf(Locale.ROOT, "%-6s %-7s %2d clients: %s/unbatched throughput %.2fx (%.3f vs %.3f req/s)%n",
                            b.text(), b.unit(), b.clients(), b.mode(), b.throughput() / u.throughput(), b.throughput(), u.throughput()));
        }
    }

    static String firstAudio(Level l) {
        return cell(l, Sample::firstAudioNanos, 50) + " | " + cell(l, Sample::firstAudioNanos, 95) + " | "
                + cell(l, Sample::firstAudioNanos, 99);
    }

    static String cell(Level l, java.util.function.ToLongFunction<Sample> f, double p) {
        return l == null ? "-" : String.format(Locale.ROOT, "%.2f", pct(l.samples(), f, p) / 1e9);
    }
}
