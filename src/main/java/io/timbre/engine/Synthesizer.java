package io.timbre.engine;

import io.timbre.text.TextFrontend;
import io.timbre.text.TextTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Text + speaker features -> PCM. The text is split into segments; the LLM generates every segment's speech
 * tokens in one batch; flow and vocoder run per segment on a fixed pool of workers; the waveforms are joined
 * in order. The device-memory policy runs once per request, after the last segment.
 */
public final class Synthesizer implements AutoCloseable {
    public record Options(long seed, boolean greedy) {
    }

    /** Stage times in nanoseconds: llm is wall time of the batch; flow and vocoder are summed over segments. */
    public record Timings(long llm, long flow, long vocoder, long total) {
    }

    public record Result(float[] pcm, int sampleRate, int segments, int speechTokens, Timings timings) {
        public double seconds() {
            return pcm.length / (double) sampleRate;
        }
    }

    private final ModelPack pack;
    private final TextTokenizer tokenizer;
    private final TextFrontend frontend;
    private final SpeechLm lm;
    private final FlowDecoder flow;
    private final Vocoder vocoder;
    private final DeviceMemory memory;
    private final ExecutorService workers;

    public Synthesizer(ModelPack pack, TextTokenizer tokenizer, int workers, DeviceMemory memory) {
        this.pack = pack;
        this.tokenizer = tokenizer;
        PackManifest m = pack.manifest;
        this.frontend = new TextFrontend(tokenizer::count, m.tokenMaxN(), m.tokenMinN(), m.mergeLen());
        this.lm = new SpeechLm(pack);
        this.flow = new FlowDecoder(pack);
        this.vocoder = new Vocoder(pack);
        this.memory = memory;
        AtomicInteger n = new AtomicInteger();
        this.workers = Executors.newFixedThreadPool(Math.max(1, workers), r -> {
            Thread t = new Thread(r, "timbre-segment-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    public TextFrontend textFrontend() {
        return frontend;
    }

    public DeviceMemory memory() {
        return memory;
    }

    public Result synthesize(SpeakerFeatures spk, String text, Options options) {
        List<String> segments = frontend.segments(text);
        if (segments.isEmpty()) {
            throw new IllegalArgumentException("the text has nothing to speak (empty or only punctuation)");
        }
        return synthesize(spk, segments, options);
    }

    /** Synthesizes the given segments (already normalised and split) and joins them. */
    public Result synthesize(SpeakerFeatures spk, List<String> segments, Options options) {
        try {
            return run(spk, segments, options);
        } finally {
            memory.afterRequest();   // once per request, never per segment
        }
    }

    private Result run(SpeakerFeatures spk, List<String> segments, Options options) {
        long t0 = System.nanoTime();
        long[] promptText = Tensors.toLongs(spk.promptText());
        long[] promptSpeech = Tensors.toLongs(spk.speechTokens());
        int maxTokens = pack.manifest.noiseFrames() / 2 - spk.tokenLength();
        List<SpeechLm.Input> inputs = new ArrayList<>();
        for (int i = 0; i < segments.size(); i++) {
            long[] ids = tokenizer.encode(segments.get(i));
            Sampler sampler = options.greedy() ? Sampler.greedy(pack.manifest)
                    : Sampler.seeded(pack.manifest, segmentSeed(options.seed(), i));
            inputs.add(new SpeechLm.Input(promptText, ids, promptSpeech, sampler, maxTokens));
        }
        List<int[]> tokens = lm.generate(inputs);
        long t1 = System.nanoTime();
        List<Future<long[]>> parts = new ArrayList<>();   // [flowNanos, vocoderNanos] with samples kept aside
        float[][] audio = new float[tokens.size()][];
        for (int i = 0; i < tokens.size(); i++) {
            int index = i;
            int[] segmentTokens = tokens.get(i);
            parts.add(workers.submit(() -> {
                try (PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
                    long a = System.nanoTime();
                    if (segmentTokens.length == 0) {
                        audio[index] = new float[0];
                        return new long[]{0, 0};
                    }
                    Tensor mel = flow.decode(spk, segmentTokens);
                    long b = System.nanoTime();
                    audio[index] = vocoder.vocode(mel);
                    return new long[]{b - a, System.nanoTime() - b};
                }
            }));
        }
        long flowNanos = 0;
        long vocoderNanos = 0;
        for (Future<long[]> f : parts) {
            long[] times = await(f);
            flowNanos += times[0];
            vocoderNanos += times[1];
        }
        int total = 0;
        int speechTokens = 0;
        for (int i = 0; i < audio.length; i++) {
            total += audio[i].length;
            speechTokens += tokens.get(i).length;
        }
        float[] pcm = new float[total];
        int at = 0;
        for (float[] a : audio) {
            System.arraycopy(a, 0, pcm, at, a.length);
            at += a.length;
        }
        return new Result(pcm, pack.manifest.outputSampleRate(), segments.size(), speechTokens,
                new Timings(t1 - t0, flowNanos, vocoderNanos, System.nanoTime() - t0));
    }

    /** Each segment gets its own random stream derived from the request seed, independent of scheduling. */
    static long segmentSeed(long seed, int segment) {
        return seed * 0x9E3779B97F4A7C15L + segment * 0xBF58476D1CE4E5B9L + 1;
    }

    private static long[] await(Future<long[]> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a segment", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(c);
        }
    }

    @Override
    public void close() {
        workers.shutdown();
        try {
            workers.awaitTermination(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
