package io.timbre.engine;

import io.timbre.audio.WavCodec;
import io.timbre.text.TextTokenizer;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The process's resident memory (VmRSS) stays flat after warm-up while the engine serves rounds of 1 to 4 concurrent
 * zero-shot syntheses of texts from one word to several sentences, with the host memory policy the service runs
 * ({@code idle}: malloc_trim when the last request in flight finishes). Without it, glibc keeps what LibTorch freed
 * and resident memory ratchets up with each larger request (issue 15, item 9).
 */
class EngineMemoryTest {
    static final int WARMUP_ROUNDS = 8;
    static final int ROUNDS = 40;
    static final int[] CONCURRENCY = {1, 4, 2, 3};
    /** One to six text tokens: with the tiny pack's random weights a segment runs to its 20-tokens-per-text-token cap. */
    static final String[] TEXTS = {"A", "Hello there.", "Yes, good morning to you.", "Hi."};
    /**
     * Growth of resident memory allowed after warm-up: 96 MB. Without trimming, glibc keeps hundreds of MB that LibTorch
     * freed (issue 15 measured +0.6 GB over 300 requests in the packaged service); a leaked tensor per request would
     * add more than this over the rounds too.
     */
    static final long RSS_BOUND = 96L << 20;

    /** VmRSS of this process from /proc/self/status. */
    static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void residentMemoryStaysFlat() throws Exception {
        float[] prompt = java.util.Arrays.copyOf(WavCodec.decode(Files.readAllBytes(Golden.DIR.resolve("tone.wav"))).samples(), 24000);
        HostMemory host = HostMemory.parse("idle", "0");
        ExecutorService clients = Executors.newFixedThreadPool(4);
        try (ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
             TextTokenizer tokenizer = new TextTokenizer(Golden.PACK.resolve("tokenizer.json"));
             Synthesizer synth = new Synthesizer(pack, 2, DeviceMemory.forDevice(pack.device, "per-request", "0", host))) {
            FeatureExtractor extractor = new FeatureExtractor(pack, tokenizer);
            long rssWarm = 0;
            long rssMax = 0;
            int requests = 0;
            for (int round = 0; round < ROUNDS; round++) {
                int concurrent = CONCURRENCY[round % CONCURRENCY.length];
                List<Future<Integer>> results = new ArrayList<>();
                for (int c = 0; c < concurrent; c++) {
                    String text = TEXTS[(round + c) % TEXTS.length];
                    long seed = round * 10L + c;
                    results.add(clients.submit(() -> {
                        try (SpeakerFeatures spk = extractor.extract(prompt, 16000, "A steady vowel.")) {
                            return synth.synthesize(Requests.of(tokenizer, spk, List.of(text), new Synthesizer.Options(seed, false))).pcm().length;
                        }
                    }));
                }
                for (Future<Integer> r : results) {
                    assertTrue(r.get() > 0);
                }
                requests += concurrent;
                waitForTrim(host);
                System.gc();   // a full collection shrinks the Java heap, so that its size does not count as native growth
                long rss = residentBytes();
                if (round == WARMUP_ROUNDS - 1) {
                    rssWarm = rss;
                }
                if (round >= WARMUP_ROUNDS) {
                    rssMax = Math.max(rssMax, rss);
                }
                if ((round + 1) % 8 == 0) {
                    System.out.printf("memory after %d rounds (%d requests): rss %.1f MB, %d trims (%.1f ms each), %.1f MB returned%n",
                            round + 1, requests, rss / 1048576.0, host.trims(), host.trimNanos() / 1e6 / Math.max(1, host.trims()),
                            host.releasedBytes() / 1048576.0);
                }
            }
            System.out.printf("memory: rss warm %.1f MB, max after warm-up %.1f MB (%+.1f MB); %d requests, %d trims%n",
                    rssWarm / 1048576.0, rssMax / 1048576.0, (rssMax - rssWarm) / 1048576.0, requests, host.trims());
            assertTrue(rssMax - rssWarm <= RSS_BOUND, "resident memory grew by " + (rssMax - rssWarm) / 1048576 + " MB after warm-up");
            assertEquals(requests, synth.memory().decisions(), "the memory policies run once per request");
            assertEquals(0, host.inFlight(), "every admitted request was finished");
        } finally {
            clients.shutdownNow();
        }
    }

    /** The idle trim runs on its own thread; the measurement waits for it so that it sees the trimmed heap. */
    private static void waitForTrim(HostMemory host) throws InterruptedException {
        for (int i = 0; i < 200 && host.trimPending(); i++) {
            Thread.sleep(10);
        }
    }
}
