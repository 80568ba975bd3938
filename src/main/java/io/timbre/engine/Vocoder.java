package io.timbre.engine;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.regex.Pattern;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * Mel -> waveform with the pack's HiFT vocoder. Call inside the caller's PointerScope and InferenceMode.
 * <p>
 * CosyVoice's HiFT draws its source's random phases and noise from LibTorch's process-wide default generator
 * ({@code torch.rand}, {@code torch.randn_like} inside the scripted module). Left alone, a segment's noise then
 * depends on every other draw in the process: on which segments vocode at the same time on other workers, and in
 * what order. Such a pack is vocoded with the global generator seeded from the segment's {@link RandomSource}
 * under one process-wide lock, so the draws are exactly CosyVoice's after {@code torch.manual_seed(seed)} and
 * nothing runs in between. Packs whose vocoder draws nothing (the tiny pack) run without the lock.
 */
public final class Vocoder {
    /** LibTorch's default generator is one per process: every seeded vocoder call holds this while it draws. */
    private static final Object GLOBAL_GENERATOR = new Object();
    /** Calls in TorchScript's serialized code that draw from the default generator. */
    private static final Pattern RANDOM_CALL = Pattern.compile(
            "torch\\.(rand|randn|randint|normal|bernoulli|multinomial|poisson|rand_like|randn_like|randint_like)\\(|"
                    + "\\.(uniform_|normal_|bernoulli_|exponential_|geometric_|cauchy_|log_normal_|random_)\\(");

    private final ModelPack pack;
    private final boolean drawsFromGlobalGenerator;

    public Vocoder(ModelPack pack) {
        this.pack = pack;
        this.drawsFromGlobalGenerator = drawsFromGlobalGenerator(pack.dir.resolve(pack.manifest.moduleFiles().get("vocoder")));
    }

    /** Whether the pack's vocoder draws random numbers from LibTorch's default generator. */
    public boolean drawsFromGlobalGenerator() {
        return drawsFromGlobalGenerator;
    }

    /**
     * @param mel    [1, 80, F]
     * @param random the segment's random source (its seed seeds a vocoder that draws)
     * @return F * 480 samples at the pack's output rate
     */
    public float[] vocode(Tensor mel, RandomSource random) {
        if (!drawsFromGlobalGenerator) {
            return Tensors.toFloats(Tensors.tensor(Tensors.call(pack.vocode, mel)));
        }
        synchronized (GLOBAL_GENERATOR) {
            torch.manual_seed(random.seed());
            return Tensors.toFloats(Tensors.tensor(Tensors.call(pack.vocode, mel)));
        }
    }

    /**
     * Scans a TorchScript archive's code (its {@code code/*.py} entries, which the pack's sha256 already covers)
     * for calls that draw from the default generator.
     */
    static boolean drawsFromGlobalGenerator(Path scriptedModule) {
        try (ZipFile zip = new ZipFile(scriptedModule.toFile())) {
            for (var entries = zip.entries(); entries.hasMoreElements(); ) {
                ZipEntry e = entries.nextElement();
                if (!e.getName().contains("/code/") || !e.getName().endsWith(".py")) {
                    continue;
                }
                try (InputStream in = zip.getInputStream(e)) {
                    if (RANDOM_CALL.matcher(new String(in.readAllBytes(), StandardCharsets.UTF_8)).find()) {
                        return true;
                    }
                }
            }
            return false;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the vocoder's code in " + scriptedModule, e);
        }
    }
}
