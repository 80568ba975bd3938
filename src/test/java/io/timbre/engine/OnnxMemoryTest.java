package io.timbre.engine;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The ONNX Runtime sessions of a pack leave resident memory flat: over many runs on 30-second prompts (every input
 * and output tensor closed by its try block, inputs read in place from LibTorch's memory) and over many
 * open/close cycles of the sessions. A positive control first leaks sessions on purpose, to show that the
 * measurement sees what a missing close would cost; without it a bound on RSS could be one that never fails.
 */
class OnnxMemoryTest {
    static final int CYCLES = 30;
    static final int RUNS = 300;
    static final int WARMUP = 30;
    /** Allocator and JIT noise; a leaked 30-s input copy (~2.5 MB per run) would add ~670 MB over 270 runs. */
    static final long RUN_BOUND = 32L << 20;

    @Test
    void sessionsAndRunsLeaveResidentMemoryFlat() {
        try (ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
             PointerScope scope = new PointerScope(); InferenceMode mode = new InferenceMode()) {
            float[] samples = new float[16000 * 30];
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(1);
            for (int i = 0; i < samples.length; i++) {
                samples[i] = (float) (0.1 * rnd.nextGaussian());
            }
            Tensor wav = Tensors.floats(samples, 1, samples.length);
            Tensor mel = Tensors.cpuContiguous(Tensors.tensor(Tensors.call(pack.whisperLogMel, wav)));
            Tensor fbank = Tensors.cpuContiguous(Tensors.tensor(Tensors.call(pack.kaldiFbank, wav)));
            FloatBuffer melBuf = Tensors.floatBuffer(mel);
            FloatBuffer fbankBuf = Tensors.floatBuffer(fbank);

            // 1. positive control: sessions that are not closed grow resident memory by a measurable amount
            List<OnnxModels> leaked = new ArrayList<>();
            long before = settledRss();
            for (int i = 0; i < CYCLES; i++) {
                OnnxModels m = OnnxModels.open(pack.dir, pack.manifest, OnnxModels.Options.DEFAULT, -1);
                leaked.add(m);
                m.speechTokens(melBuf.duplicate(), mel.size(2));
                m.speakerEmbedding(fbankBuf.duplicate(), fbank.size(1));
            }
            long leakGrowth = settledRss() - before;
            leaked.forEach(OnnxModels::close);
            long perSession = leakGrowth / CYCLES;
            System.out.printf("onnx memory: %d unclosed sessions grew rss by %.1f MB (%.2f MB each)%n",
                    CYCLES, leakGrowth / 1048576.0, perSession / 1048576.0);
            // measured: ~18 MB per unclosed session (its weights and the arena of a 30-s run)
            assertTrue(perSession > 1L << 20, "the positive control must show growth, or the bound below proves nothing");
            long cycleBound = 2 * perSession;   // two sessions left open in 30 cycles would exceed it

            // 2. open/run/close cycles: the same work, each set of sessions closed
            before = settledRss();
            for (int i = 0; i < CYCLES; i++) {
                try (OnnxModels m = OnnxModels.open(pack.dir, pack.manifest, OnnxModels.Options.DEFAULT, -1)) {
                    m.speechTokens(melBuf.duplicate(), mel.size(2));
                    m.speakerEmbedding(fbankBuf.duplicate(), fbank.size(1));
                }
            }
            long cycleGrowth = settledRss() - before;
            System.out.printf("onnx memory: %d closed open/run/close cycles grew rss by %.1f MB (bound %.1f MB)%n",
                    CYCLES, cycleGrowth / 1048576.0, cycleBound / 1048576.0);
            assertTrue(cycleGrowth <= cycleBound, "closed sessions grew resident memory by " + cycleGrowth);

            // 3. many runs on one pack's sessions
            int[] first = null;
            long warm = 0;
            long max = 0;
            for (int i = 0; i < RUNS; i++) {
                int[] ids = pack.onnx.speechTokens(melBuf.duplicate(), mel.size(2));
                float[] emb = pack.onnx.speakerEmbedding(fbankBuf.duplicate(), fbank.size(1));
                assertEquals(192, emb.length);
                if (first == null) {
                    first = ids;
                    assertEquals(750, ids.length, "25 tokens per second of 30 s");
                } else {
                    assertTrue(java.util.Arrays.equals(first, ids), "same input, same tokens");
                }
                if (i == WARMUP - 1) {
                    warm = settledRss();
                } else if (i >= WARMUP) {
                    max = Math.max(max, Pointer.physicalBytes());
                }
            }
            System.out.printf("onnx memory: %d runs on 30-s features: rss warm %.1f MB, max %.1f MB (bound +%.0f MB)%n",
                    RUNS, warm / 1048576.0, max / 1048576.0, RUN_BOUND / 1048576.0);
            assertTrue(max - warm <= RUN_BOUND, "ONNX runs grew resident memory by " + (max - warm) / 1048576 + " MB");
        }
    }

    private static long settledRss() {
        System.gc();
        return Pointer.physicalBytes();
    }
}
