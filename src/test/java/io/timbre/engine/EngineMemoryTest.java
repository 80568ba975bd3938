package io.timbre.engine;

import io.timbre.audio.WavCodec;
import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * 500 zero-shot syntheses (feature extraction, LLM, flow, vocoder; features closed after each) must leave
 * native memory flat after warm-up: every tensor is freed by its scope or owner, none by the GC.
 */
class EngineMemoryTest {
    static final int WARMUP = 50;
    static final int RUNS = 500;
    /** Resident memory may move by allocator fragmentation, not by leaks: a 60-token synthesis allocates ~10 MB
     * of tensors, so a leak of even one tensor per run would add > 100 MB over 450 runs. */
    static final long RSS_BOUND = 48L << 20;
    /** JavaCPP's own counter of the native bytes it tracks must return to its warm value (1 MB slack). */
    static final long TRACKED_BOUND = 1L << 20;

    @Test
    void nativeMemoryStaysFlat() throws Exception {
        // one second of the golden prompt and a one-token text keep each run short (at most 20 speech tokens)
        float[] prompt = java.util.Arrays.copyOf(WavCodec.decode(Files.readAllBytes(Golden.DIR.resolve("tone.wav"))).samples(), 16000);
        try (ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
             TextTokenizer tokenizer = new TextTokenizer(Golden.PACK.resolve("tokenizer.json"));
             Synthesizer synth = new Synthesizer(pack, tokenizer, 2, DeviceMemory.forDevice(pack.device, "per-request", "0"))) {
            FeatureExtractor extractor = new FeatureExtractor(pack, tokenizer);
            long rssWarm = 0;
            long trackedWarm = 0;
            long rssMax = 0;
            long t0 = System.nanoTime();
            for (int i = 0; i < RUNS; i++) {
                try (SpeakerFeatures spk = extractor.extract(prompt, 16000, "A steady vowel.")) {
                    Synthesizer.Result r = synth.synthesize(spk, java.util.List.of("A"),
                            new Synthesizer.Options(i, false));
                    assertTrue(r.pcm().length > 0);
                }
                if (i == WARMUP - 1) {
                    System.gc();
                    rssWarm = Pointer.physicalBytes();
                    trackedWarm = Pointer.totalBytes();
                }
                if (i >= WARMUP) {
                    rssMax = Math.max(rssMax, Pointer.physicalBytes());
                }
                if ((i + 1) % 100 == 0) {
                    System.out.printf("memory after %d runs: rss %.1f MB, javacpp tracked %d bytes (%.1f ms/run)%n", i + 1,
                            Pointer.physicalBytes() / 1048576.0, Pointer.totalBytes(), (System.nanoTime() - t0) / 1e6 / (i + 1));
                }
            }
            System.gc();
            long rssEnd = Pointer.physicalBytes();
            long trackedEnd = Pointer.totalBytes();
            System.out.printf("memory: rss warm %.1f MB, max %.1f MB, end %.1f MB; tracked warm %d, end %d; %d policy decisions%n",
                    rssWarm / 1048576.0, rssMax / 1048576.0, rssEnd / 1048576.0, trackedWarm, trackedEnd, synth.memory().decisions());
            assertTrue(rssMax - rssWarm <= RSS_BOUND, "resident memory grew by " + (rssMax - rssWarm) / 1048576 + " MB");
            assertTrue(trackedEnd - trackedWarm <= TRACKED_BOUND, "JavaCPP tracked bytes grew by " + (trackedEnd - trackedWarm));
            assertTrue(synth.memory().decisions() == RUNS, "the memory policy runs once per request");
        }
    }
}
