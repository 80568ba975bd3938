package io.timbre.engine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every committed pack matches its manifest; a missing or altered file stops loading with its name. */
class ModelPackTest {

    @Test
    void everyCommittedPackMatchesItsSha256s() throws IOException {
        List<Path> packs;
        try (Stream<Path> s = Files.list(Path.of("models"))) {
            packs = s.filter(p -> Files.isRegularFile(p.resolve("pack.json"))).toList();
        }
        assertFalse(packs.isEmpty(), "models/ holds no pack");
        for (Path pack : packs) {
            PackManifest m = PackManifest.read(pack);
            ModelPack.verify(pack, m);   // throws naming the file
            assertTrue(m.files().keySet().containsAll(m.moduleFiles().values()), pack + " lists every module");
        }
    }

    @Test
    void goldenFixturesMatchTheirIndex() throws IOException {
        var index = new com.fasterxml.jackson.databind.ObjectMapper().readTree(Golden.DIR.resolve("golden.json").toFile());
        assertEquals(PackManifest.read(Golden.PACK).version(), index.get("pack_version").asText(),
                "golden fixtures were written by this version of the tiny pack");
        index.get("files").fields().forEachRemaining(e ->
                assertEquals(e.getValue().get("sha256").asText(), ModelPack.sha256(Golden.DIR.resolve(e.getKey())), e.getKey()));
    }

    @Test
    void missingFileIsNamed(@TempDir Path tmp) throws IOException {
        Path pack = copyTiny(tmp);
        Files.delete(pack.resolve("flow.pt"));
        PackException e = assertThrows(PackException.class, () -> ModelPack.load(pack, "cpu"));
        assertTrue(e.getMessage().contains("flow.pt") && e.getMessage().contains("missing"), e.getMessage());
    }

    @Test
    void alteredFileIsNamed(@TempDir Path tmp) throws IOException {
        Path pack = copyTiny(tmp);
        byte[] b = Files.readAllBytes(pack.resolve("hift.pt"));
        b[b.length / 2] ^= 1;
        Files.write(pack.resolve("hift.pt"), b);
        PackException e = assertThrows(PackException.class, () -> ModelPack.load(pack, "cpu"));
        assertTrue(e.getMessage().contains("hift.pt") && e.getMessage().contains("altered"), e.getMessage());
    }

    @Test
    void notAPackDirectory(@TempDir Path tmp) {
        PackException e = assertThrows(PackException.class, () -> ModelPack.load(tmp.resolve("nope"), "cpu"));
        assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
        PackException e2 = assertThrows(PackException.class, () -> ModelPack.load(tmp, "cpu"));
        assertTrue(e2.getMessage().contains("pack.json is missing"), e2.getMessage());
    }

    @Test
    void cudaWithoutAGpuIsRefusedClearly() {
        org.junit.jupiter.api.Assumptions.assumeFalse(cudaAvailable(), "a CUDA device is present");
        PackException e = assertThrows(PackException.class, () -> ModelPack.load(Golden.PACK, "cuda:0"));
        assertTrue(e.getMessage().contains("CUDA"), e.getMessage());
    }

    private static boolean cudaAvailable() {
        NativeTorch.ensureLoaded();
        return org.bytedeco.pytorch.global.torch.cuda_is_available();
    }

    private static Path copyTiny(Path tmp) throws IOException {
        Path dst = tmp.resolve("tiny");
        Files.createDirectories(dst);
        try (Stream<Path> s = Files.list(Golden.PACK)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                Files.copy(p, dst.resolve(p.getFileName()));
            }
        }
        return dst;
    }
}
