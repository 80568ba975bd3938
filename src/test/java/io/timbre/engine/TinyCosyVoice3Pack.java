package io.timbre.engine;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The tiny CosyVoice 3 pack that Java tests run on: export_cosyvoice3.py's export of the committed conformance
 * directory models/conformance/cosyvoice3/model (random weights in the release's layout) into
 * target/conformance/cosyvoice3-pack, with the vocoder source length the conformance fixtures were made with.
 * The exporter runs under Debian's /usr/bin/python3 (PyTorch 1.13; .ci/run installs it) or TIMBRE_PYTHON.
 *
 * <p>Built at most once: a digest of its inputs (the model directory, the exporter's Python sources, the python
 * command, the source length) is kept next to the pack, and a pack whose digest matches is reused, so
 * {@code CosyVoice3ConformanceTest} and the service tests on this pack share one export per run (and across runs
 * while nothing it is made from changed). A failed export fails the caller; it never skips.
 */
public final class TinyCosyVoice3Pack {
    public static final Path MODEL = Path.of("models/conformance/cosyvoice3/model");
    public static final Path EXPECTED_JSON = Path.of("models/conformance/cosyvoice3/expected/expected.json");
    public static final Path PACK = Path.of("target/conformance/cosyvoice3-pack");
    static final Path DIGEST = Path.of("target/conformance/cosyvoice3-pack.inputs");
    static final List<Path> EXPORTER_SOURCES = List.of(Path.of("models/export_cosyvoice3.py"),
            Path.of("models/export_cosyvoice2.py"), Path.of("models/timbrepack"));

    private static String exporterOutput = "";

    private TinyCosyVoice3Pack() {
    }

    /** The pack directory, exported first unless a pack of the same inputs is already there. */
    public static synchronized Path ensure() {
        try {
            String python = python();
            int seconds = new ObjectMapper().readTree(EXPECTED_JSON.toFile()).get("seeds").get("hift_source_seconds").asInt();
            List<String> cmd = List.of(python, "models/export_cosyvoice3.py", MODEL.toString(), "--out", PACK.toString(),
                    "--source-seconds", Integer.toString(seconds));
            String digest = digest(String.join(" ", cmd));
            if (Files.isRegularFile(PACK.resolve("pack.json")) && Files.isRegularFile(DIGEST)
                    && Files.readString(DIGEST).equals(digest)) {
                return PACK;
            }
            Files.deleteIfExists(DIGEST);
            deleteTree(PACK);
            Files.createDirectories(PACK.getParent());
            Process p;
            try {
                p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            } catch (IOException e) {
                throw new AssertionError("cannot run " + python + " (the exporter needs Debian's python3 with python3-torch, "
                        + "python3-torchaudio and python3-yaml; .ci/run installs them): " + e.getMessage(), e);
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(30, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError("exporter did not finish: " + String.join(" ", cmd));
            }
            exporterOutput = "exporter: " + String.join(" ", cmd) + "\n" + out;
            System.out.println(exporterOutput);
            if (p.exitValue() != 0) {
                throw new AssertionError("the exporter failed on the release-layout directory:\n" + out);
            }
            Files.writeString(DIGEST, digest);
            return PACK;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while exporting " + PACK, e);
        }
    }

    /** What the last export in this JVM printed ("" when the pack was reused). */
    public static synchronized String exporterOutput() {
        return exporterOutput;
    }

    static String python() {
        return System.getenv().getOrDefault("TIMBRE_PYTHON",
                Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3");
    }

    /** SHA-256 over the command and every input file's path and bytes (Python caches left out). */
    static String digest(String command) throws IOException {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        sha.update(command.getBytes(StandardCharsets.UTF_8));
        List<Path> roots = Stream.concat(Stream.of(MODEL, EXPECTED_JSON), EXPORTER_SOURCES.stream()).toList();
        for (Path root : roots) {
            List<Path> files;
            try (Stream<Path> walk = Files.walk(root)) {
                files = walk.filter(Files::isRegularFile)
                        .filter(f -> !f.toString().contains("__pycache__") && !f.toString().endsWith(".pyc"))
                        .sorted(Comparator.comparing(Path::toString)).toList();
            }
            for (Path f : files) {
                sha.update(f.toString().getBytes(StandardCharsets.UTF_8));
                sha.update((byte) 0);
                sha.update(Files.readAllBytes(f));
            }
        }
        return HexFormat.of().formatHex(sha.digest());
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
