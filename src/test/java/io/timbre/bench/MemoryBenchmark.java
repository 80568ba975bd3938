package io.timbre.bench;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Memory benchmark (a command, not a test). Starts the packaged service ({@code target/quarkus-app}) as a child
 * process on loopback (embedded PostgreSQL, the given pack), registers a speaker, and sends {@code --requests}
 * streamed {@code POST /v1/tts} from {@code --clients} closed-loop clients, with texts of varied length (one word to
 * a sentence). Every 100 requests it prints the service's resident memory (VmRSS) and the mean latency of
 * those 100; at the end, the growth of resident memory after warm-up ({@code --warmup} requests) and the host
 * memory policy's trim count and time (from /q/metrics). The service's host memory policy and environment (e.g.
 * {@code MALLOC_ARENA_MAX=2}, {@code LD_PRELOAD=...libjemalloc.so.2}) are arguments, so one command compares them.
 *
 * <pre>./mvnw -q -DskipTests package exec:java -Dexec.mainClass=io.timbre.bench.MemoryBenchmark \
 *     -Dexec.args="--requests 1000 --clients 4 --host-policy idle"</pre>
 */
public final class MemoryBenchmark {
    /** One to about ten text tokens (the tiny pack's random weights run each segment to its 20x cap). */
    static final String[] TEXTS = {"Hi.", "Hello there, how are you today?", "Yes.", "The quick brown fox jumps over the lazy dog.",
            "Good morning.", "A"};

    public static void main(String[] args) throws Exception {
        Path pack = Path.of("models/tiny");
        Path prompt = Path.of("models/tiny/golden/tone.wav");
        int requests = 1000;
        int clients = 4;
        int warmup = 200;
        String policy = "idle";
        String watermark = "1536m";
        String[] texts = TEXTS;
        int every = 100;
        Map<String, String> env = new java.util.LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--pack" -> pack = Path.of(args[++i]);
                case "--requests" -> requests = Integer.parseInt(args[++i]);
                case "--clients" -> clients = Integer.parseInt(args[++i]);
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                case "--host-policy" -> policy = args[++i];
                case "--host-watermark" -> watermark = args[++i];
                case "--every" -> every = Integer.parseInt(args[++i]);
                case "--texts" -> texts = args[++i].split("\\|");
                case "--env" -> {
                    String[] kv = args[++i].split("=", 2);
                    env.put(kv[0], kv[1]);
                }
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + " (use --pack, --requests, --clients, --warmup, --host-policy, --host-watermark, --texts 'A|B|C', --every N, --env K=V)");
            }
        }
        if (!Files.isRegularFile(Path.of("target/quarkus-app/quarkus-run.jar"))) {
            System.err.println("no packaged service; run ./mvnw -DskipTests package first");
            System.exit(2);
        }
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Path data = Files.createTempDirectory("timbre-memory-");
        Path log = data.resolve("service.log");
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dquarkus.profile=embedded", "-Dquarkus.http.port=" + port, "-Dquarkus.shutdown.delay=0s",
                "-Dtimbre.admin-key=" + LoadBenchmark.ADMIN_KEY,   // the embedded profile accepts no published key
                "-Dtimbre.data-dir=" + data, "-Dtimbre.model-pack=" + pack.toAbsolutePath(), "-Dquarkus.log.level=WARN",
                "-Dtimbre.engine.queue-timeout=30m", "-Dtimbre.engine.host-memory-policy=" + policy,
                "-Dtimbre.engine.host-memory-watermark=" + watermark,
                "-jar", "target/quarkus-app/quarkus-run.jar");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().putAll(env);
        System.out.printf(Locale.ROOT, "memory benchmark: pack %s, %d requests, %d clients, host policy %s (watermark %s), env %s, %d cores, texts %s%n",
                pack, requests, clients, policy, watermark, env, Runtime.getRuntime().availableProcessors(), List.of(texts));
        Process service = pb.start();
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        URI base = URI.create("http://127.0.0.1:" + port);
        try {
            LoadBenchmark.waitReady(http, base, service, log);
            String key = LoadBenchmark.createUser(http, base);
            String speaker = LoadBenchmark.register(http, base, key, prompt, "A steady vowel for the speaker prompt.");
            ObjectMapper json = new ObjectMapper();
            String[] bodies = new String[texts.length];
            for (int i = 0; i < texts.length; i++) {
                bodies[i] = "{\"text\":" + json.writeValueAsString(texts[i]) + ",\"speakerId\":\"" + speaker
                        + "\",\"stream\":true,\"seed\":" + i + "}";
            }
            System.out.printf(Locale.ROOT, "service pid %d ready; RSS %.1f MB%n", service.pid(), LoadBenchmark.rssKb(service.pid()) / 1024.0);
            AtomicInteger next = new AtomicInteger();
            AtomicInteger done = new AtomicInteger();
            AtomicInteger errors = new AtomicInteger();
            AtomicLong windowNanos = new AtomicLong();
            List<double[]> marks = new ArrayList<>();   // {requests, rss MB, mean latency ms}
            final int total = requests;
            final int markEvery = every;
            Runnable client = () -> {
                for (int n = next.getAndIncrement(); n < total; n = next.getAndIncrement()) {
                    LoadBenchmark.Sample s = LoadBenchmark.request(http, base, key, bodies[n % bodies.length]);
                    if (!s.ok()) {
                        errors.incrementAndGet();
                    }
                    windowNanos.addAndGet(s.latencyNanos());
                    int d = done.incrementAndGet();
                    if (d % markEvery == 0) {
                        double rss = LoadBenchmark.rssKb(service.pid()) / 1024.0;
                        double ms = windowNanos.getAndSet(0) / 1e6 / markEvery;
                        synchronized (marks) {
                            marks.add(new double[] {d, rss, ms});
                        }
                        System.out.printf(Locale.ROOT, "%5d requests: RSS %7.1f MB, mean latency %6.0f ms, errors %d%n", d, rss, ms, errors.get());
                    }
                }
            };
            long t0 = System.nanoTime();
            List<Thread> threads = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                Thread t = new Thread(client);
                t.start();
                threads.add(t);
            }
            for (Thread t : threads) {
                t.join();
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            Thread.sleep(2000);   // an idle trim, if the policy makes one, has happened
            double idleRss = LoadBenchmark.rssKb(service.pid()) / 1024.0;
            final int warmedAt = warmup;
            double warm = marks.stream().filter(m -> m[0] >= warmedAt).mapToDouble(m -> m[1]).findFirst().orElse(Double.NaN);
            double max = marks.stream().filter(m -> m[0] >= warmedAt).mapToDouble(m -> m[1]).max().orElse(Double.NaN);
            double last = marks.isEmpty() ? Double.NaN : marks.get(marks.size() - 1)[1];
            double meanMs = marks.stream().mapToDouble(m -> m[2]).average().orElse(Double.NaN);
            String metrics = http.send(java.net.http.HttpRequest.newBuilder(base.resolve("/q/metrics"))
                            .header("Authorization", "Bearer " + LoadBenchmark.ADMIN_KEY).build(),   // metrics need a key
                    java.net.http.HttpResponse.BodyHandlers.ofString()).body();
            System.out.printf(Locale.ROOT, "%nsummary: policy %s, env %s: %d requests in %.0f s (%.2f req/s), mean latency %.0f ms, "
                            + "errors %d; RSS at %d %.1f MB, max after %.1f MB, at the end %.1f MB (%+.1f%% after warm-up), idle %.1f MB; "
                            + "trims %s, trim time %s s%n",
                    policy, env, total, seconds, total / seconds, meanMs, errors.get(), warmup, warm, max, last,
                    100 * (last - warm) / warm, idleRss, metric(metrics, "timbre_host_memory_trims"),
                    metric(metrics, "timbre_host_memory_trim_seconds"));
        } finally {
            service.destroy();
            if (!service.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
                service.destroyForcibly();
            }
        }
    }

    private static String metric(String text, String name) {
        for (String line : text.split("\n")) {
            if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
                return line.substring(line.lastIndexOf(' ') + 1);
            }
        }
        return "?";
    }
}
