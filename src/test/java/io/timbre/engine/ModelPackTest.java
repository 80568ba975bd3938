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
    void alteredOnnxFileIsNamed(@TempDir Path tmp) throws IOException {
        Path pack = copyTiny(tmp);
        byte[] b = Files.readAllBytes(pack.resolve("campplus.onnx"));
        b[b.length / 2] ^= 1;
        Files.write(pack.resolve("campplus.onnx"), b);
        PackException e = assertThrows(PackException.class, () -> ModelPack.load(pack, "cpu"));
        assertTrue(e.getMessage().contains("campplus.onnx") && e.getMessage().contains("altered"), e.getMessage());
    }

    /** A valid ONNX model with the wrong signature (the tokenizer in the speaker encoder's place, hashes updated). */
    @Test
    void onnxFileWithTheWrongSignatureIsNamed(@TempDir Path tmp) throws IOException {
        Path pack = copyTiny(tmp);
        Files.copy(pack.resolve("speech_tokenizer_v2.onnx"), pack.resolve("campplus.onnx"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        var root = (com.fasterxml.jackson.databind.node.ObjectNode) mapper.readTree(pack.resolve("pack.json").toFile());
        var entry = (com.fasterxml.jackson.databind.node.ObjectNode) root.get("files").get("campplus.onnx");
        entry.put("sha256", ModelPack.sha256(pack.resolve("campplus.onnx")));
        entry.put("bytes", Files.size(pack.resolve("campplus.onnx")));
        mapper.writeValue(pack.resolve("pack.json").toFile(), root);
        PackException e = assertThrows(PackException.class, () -> ModelPack.load(pack, "cpu"));
        assertTrue(e.getMessage().contains("campplus.onnx") && e.getMessage().contains("wrong signature")
                && e.getMessage().contains("2 inputs"), e.getMessage());
    }

    @Test
    void packWithoutOnnxEntriesIsRefused(@TempDir Path tmp) throws IOException {
        Path pack = copyTiny(tmp);
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        var root = (com.fasterxml.jackson.databind.node.ObjectNode) mapper.readTree(pack.resolve("pack.json").toFile());
        ((com.fasterxml.jackson.databind.node.ObjectNode) root.get("frontend")).remove("speech_tokenizer");
        mapper.writeValue(pack.resolve("pack.json").toFile(), root);
        PackException e = assertThrows(PackException.class, () -> ModelPack.load(pack, "cpu"));
        assertTrue(e.getMessage().contains("speech_tokenizer"), e.getMessage());
    }

    @Test
    void closingThePackClosesItsOnnxSessionsOnce() {
        ModelPack pack = ModelPack.load(Golden.PACK, "cpu");
        OnnxModels onnx = pack.onnx();
        assertFalse(onnx.isClosed());
        pack.close();
        assertTrue(onnx.isClosed());
        pack.close();   // idempotent
        onnx.close();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> onnx.speakerEmbedding(java.nio.ByteBuffer.allocateDirect(80 * 4).asFloatBuffer(), 1));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
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
