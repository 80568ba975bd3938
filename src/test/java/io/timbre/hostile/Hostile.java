package io.timbre.hostile;

import static io.restassured.RestAssured.given;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** What every hostile-input test checks besides the answer: nothing written, and others still served. */
final class Hostile {

    /** {@code %test.timbre.feature-dir}. */
    static final Path FEATURE_DIR = Path.of("target/test-features");

    private Hostile() {
    }

    /** The names in the feature directory now. */
    static Set<String> featureFiles() {
        if (!Files.isDirectory(FEATURE_DIR)) {
            return Set.of();
        }
        try (Stream<Path> files = Files.list(FEATURE_DIR)) {
            return files.map(p -> p.getFileName().toString()).collect(Collectors.toSet());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Another user's {@code GET /v1/me}, started now; join it to assert it got 200. */
    static CompletableFuture<Integer> othersRequest(String otherKey) {
        return CompletableFuture.supplyAsync(() -> given().auth().oauth2(otherKey).get("/v1/me").statusCode());
    }
}
