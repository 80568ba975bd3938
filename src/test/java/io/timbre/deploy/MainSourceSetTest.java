package io.timbre.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;

/**
 * What ships in the service jar is the service: benchmarks and other command-line entry points live in the test
 * source set (src/test/java/io/timbre/bench, run with exec:java on the test classpath), never in src/main/java.
 */
class MainSourceSetTest {
    static final Path MAIN = Path.of("src/main/java");
    static final Pattern MAIN_METHOD = Pattern.compile("\\bstatic\\s+void\\s+main\\s*\\(\\s*String");

    @Test
    void noCommandLineEntryPointInTheMainSourceSet() throws IOException {
        List<String> entryPoints;
        try (Stream<Path> files = Files.walk(MAIN)) {
            entryPoints = files.filter(f -> f.toString().endsWith(".java")).filter(f -> {
                try {
                    return MAIN_METHOD.matcher(Files.readString(f)).find();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }).map(Path::toString).sorted().collect(Collectors.toList());
        }
        assertEquals(List.of(), entryPoints, "main methods belong to benchmarks and tools in src/test/java");
        assertTrue(Files.notExists(MAIN.resolve("io/timbre/bench")), "the benchmarks are in src/test/java/io/timbre/bench");
        for (String bench : List.of("EngineBenchmark", "LoadBenchmark", "MemoryBenchmark")) {
            assertTrue(Files.isRegularFile(Path.of("src/test/java/io/timbre/bench", bench + ".java")), bench);
        }
    }
}
