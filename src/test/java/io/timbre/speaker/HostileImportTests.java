package io.timbre.speaker;

import io.quarkus.test.junit.QuarkusTest;
import io.timbre.account.TestUsers;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.TorchSave;
import io.timbre.engine.Engine;
import jakarta.inject.Inject;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasSize;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Crafted spk2info.pt files, one per attack on the import: each is answered with a 4xx problem naming the entry
 * and key and what was expected, writes no row and no file, and another user's synthesis running at the same
 * time still gets its audio. The files are built by hand ({@link CraftedPickles}), not by the service's writer.
 */
@QuarkusTest
class HostileImportTests {
    static final Path GOLDEN = Path.of("models/tiny/golden/spk2info.pt");

    @Inject
    Engine engine;
    @Inject
    FeatureStore store;

    static SpeakerFeatures.Data tone;
    static SpeakerFeatures.Data chirp;
    static Refusals refusals;

    @BeforeEach
    void setUp() throws Exception {
        if (tone == null) {
            Map<String, SpeakerFeatures.Data> golden = SpeakerFeatures.readSpk2info(Files.readAllBytes(GOLDEN),
                    engine.featureSchema(), TorchSave.Limits.of(1 << 24), 100, "x");
            tone = golden.get("tone");
            chirp = golden.get("chirp");
        }
        if (refusals == null) {
            refusals = new Refusals(store);
        }
    }

    // ---------------------------------------------------------------------------------------- sizes in the file

    @Test
    void aStorageThatClaimsMoreElementsThanItsBytesIsRefused() {
        var e = CraftedPickles.entry(tone);
        ((CraftedPickles.T) e.get("prompt_speech_feat")).claim = 1_000_000_000L;
        long before = rssKb();
        refused(spk2info("tone", e), 422, "spk2info-invalid", "entry 'tone'", "'prompt_speech_feat'",
                "claims 1000000000 float elements but holds 54400 bytes");
        System.out.printf("storage claiming 4 GB in a %d-byte file: RSS %d MB before, %d MB after%n",
                spk2info("tone", e).length, before / 1024, rssKb() / 1024);
    }

    @Test
    void aTensorLargerThanItsStorageIsRefused() {
        var e = CraftedPickles.entry(tone);
        CraftedPickles.T feat = (CraftedPickles.T) e.get("prompt_speech_feat");
        feat.shape = new long[]{1, 170_000, 80};
        feat.stride = CraftedPickles.T.dense(feat.shape);
        refused(spk2info("tone", e), 422, "spk2info-invalid", "entry 'tone'", "prompt_speech_feat", "of a storage of 13600");
    }

    @Test
    void anOffsetPastTheStorageIsRefused() {
        var e = CraftedPickles.entry(tone);
        ((CraftedPickles.T) e.get("llm_prompt_speech_token")).offset = 80;
        refused(spk2info("tone", e), 422, "spk2info-invalid", "llm_prompt_speech_token", "needs elements 80..165");
    }

    @Test
    void zeroStridesThatMakeOneValueLookLikeManyAreRefused() {
        var e = CraftedPickles.entry(tone);
        CraftedPickles.T one = CraftedPickles.floats(new float[]{0.5f}, 1, 170, 80);
        one.stride = new long[]{0, 0, 0};
        e.put("prompt_speech_feat", one);
        refused(spk2info("tone", e), 422, "spk2info-invalid", "prompt_speech_feat", "strides [0, 0, 0]");
    }

    // ---------------------------------------------------------------------------------------- values

    @Test
    void speechTokenIdsOutsideTheVocabularyAreRefused() {
        int[] tokens = tone.speechTokens().clone();
        tokens[7] = engine.pack().manifest.speechTokenSize() + 3;
        var e = CraftedPickles.entry(new SpeakerFeatures.Data(tone.promptText(), tokens, tone.speechFeat(), tone.embedding()));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "entry 'tone'", "'llm_prompt_speech_token' holds id 6564 at position 7",
                "speech tokens are 0 to 6560");
    }

    @Test
    void negativeAndTextIdsOutsideTheVocabularyAreRefused() {
        int[] text = tone.promptText().clone();
        text[0] = 100_000;
        var e = CraftedPickles.entry(new SpeakerFeatures.Data(text, tone.speechTokens(), tone.speechFeat(), tone.embedding()));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "'prompt_text' holds id 100000", "text vocabulary");
        int[] tokens = tone.speechTokens().clone();
        tokens[0] = -1;
        e = CraftedPickles.entry(new SpeakerFeatures.Data(tone.promptText(), tokens, tone.speechFeat(), tone.embedding()));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "holds id -1");
    }

    @Test
    void inconsistentLengthsAreRefused() {
        var e = CraftedPickles.entry(new SpeakerFeatures.Data(tone.promptText(), tone.speechTokens(),
                Arrays.copyOf(tone.speechFeat(), tone.speechFeat().length - 80), tone.embedding()));
        e.put("prompt_speech_feat_len", CraftedPickles.ints(new int[]{tone.frames()}, 1));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "'prompt_speech_feat' has shape [1, 169, 80]", "expected [1, 170, 80]");
        e = CraftedPickles.entry(tone);
        e.put("prompt_text_len", CraftedPickles.ints(new int[]{999}, 1));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "'prompt_text_len' is 999");
    }

    @Test
    void nanFeaturesAreRefused() {
        float[] feat = tone.speechFeat().clone();
        feat[10] = Float.NaN;
        var e = CraftedPickles.entry(new SpeakerFeatures.Data(tone.promptText(), tone.speechTokens(), feat, tone.embedding()));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "'prompt_speech_feat' holds NaN");
    }

    @Test
    void missingAndUnknownKeysAreRefused() {
        var e = CraftedPickles.entry(tone);
        e.remove("flow_embedding");
        refused(spk2info("tone", e), 422, "spk2info-invalid", "key 'flow_embedding' is missing");
        e = CraftedPickles.entry(tone);
        e.put("speech_feat", e.get("prompt_speech_feat"));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "key 'speech_feat' is not one of");
    }

    @Test
    void wrongDtypesAreRefused() {
        var e = CraftedPickles.entry(tone);
        CraftedPickles.T feat = (CraftedPickles.T) e.get("prompt_speech_feat");
        feat.storageClass = "IntStorage";
        refused(spk2info("tone", e), 422, "spk2info-invalid", "key 'prompt_speech_feat' holds int values; expected float32");
        e = CraftedPickles.entry(tone);
        ((CraftedPickles.T) e.get("llm_embedding")).storageClass = "HalfStorage";
        refused(spk2info("tone", e), 422, "spk2info-invalid", "'torch.HalfStorage', which a feature file may not use");
    }

    // ---------------------------------------------------------------------------------------- references

    @Test
    void oneEntryUnderManyNamesIsRefused() {
        var e = CraftedPickles.entry(tone);
        LinkedHashMap<String, Object> root = new LinkedHashMap<>();
        for (int i = 0; i < 5; i++) {
            root.put("copy" + i, e);
        }
        refused(CraftedPickles.file(root), 422, "spk2info-invalid", "entry 'copy1' is the same object as entry 'copy0'");
    }

    @Test
    void tensorsSharedAcrossEntriesOrKeysAreRefused() {
        var a = CraftedPickles.entry(tone);
        var b = CraftedPickles.entry(tone);
        b.put("prompt_speech_feat", a.get("prompt_speech_feat"));
        LinkedHashMap<String, Object> root = new LinkedHashMap<>();
        root.put("a", a);
        root.put("b", b);
        refused(CraftedPickles.file(root), 422, "spk2info-invalid", "entry 'b'", "shares its storage with entry 'a'");
        var c = CraftedPickles.entry(tone);
        c.put("llm_embedding", c.get("prompt_speech_feat"));
        refused(spk2info("c", c), 422, "spk2info-invalid", "key 'llm_embedding' is the same tensor as key 'prompt_speech_feat'");
    }

    // ---------------------------------------------------------------------------------------- pickle and zip

    @Test
    void globalsOutsideTheAllowListAreNeverCalled() throws Exception {
        Path marker = Files.createTempFile("timbre-pwned", ".txt");
        Files.delete(marker);
        var e = CraftedPickles.entry(tone);
        e.put("prompt_text", CraftedPickles.call("posix", "system", "touch " + marker));
        refused(spk2info("tone", e), 422, "spk2info-invalid", "'posix.system', which a feature file may not use");
        LinkedHashMap<String, Object> root = new LinkedHashMap<>();
        root.put("x", CraftedPickles.call("builtins", "eval", "__import__('os').system('touch " + marker + "')"));
        refused(CraftedPickles.file(root), 422, "spk2info-invalid", "'builtins.eval'");
        assertTrue(!Files.exists(marker), "nothing ran");
    }

    @Test
    void truncatedAndGarbageFilesAreRefused() throws Exception {
        byte[] golden = Files.readAllBytes(GOLDEN);
        refused(Arrays.copyOf(golden, golden.length / 2), 422, "spk2info-invalid", "");
        refused(Arrays.copyOf(golden, 1500), 422, "spk2info-invalid", "");
        refused("\u0080\u0002}q\u0000.".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), 422, "spk2info-invalid", "torch.save");
        byte[] pkl = CraftedPickles.file(spk2infoMap("tone", CraftedPickles.entry(tone)));
        refused(Arrays.copyOf(pkl, 800), 422, "spk2info-invalid", "");
    }

    @Test
    void aZipBombIsRefusedWithoutInflatingIt() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(out)) {
            zip.putNextEntry(new ZipEntry("archive/data.pkl"));
            zip.write(CraftedPickles.file(spk2infoMap("tone", CraftedPickles.entry(tone))));   // any content
            zip.closeEntry();
            zip.putNextEntry(new ZipEntry("archive/data/0"));
            byte[] zeros = new byte[1 << 20];
            for (int i = 0; i < 64; i++) {   // 64 MiB of zeros, ~64 KiB compressed
                zip.write(zeros);
            }
            zip.closeEntry();
        }
        assertTrue(out.size() < 200_000, "the bomb is small: " + out.size());
        long before = rssKb();
        refused(out.toByteArray(), 413, "spk2info-too-large", "inflates to more than");
        System.out.printf("zip bomb (%d bytes -> 64 MiB): RSS %d MB before, %d MB after%n", out.size(), before / 1024, rssKb() / 1024);
    }

    // ---------------------------------------------------------------------------------------- what must work

    @Test
    void storagesTaggedCudaAreReadOnTheCpu() {
        var e = CraftedPickles.entry(chirp);
        for (Object v : e.values()) {
            ((CraftedPickles.T) v).location = "cuda:0";
        }
        String key = TestUsers.createUser(TestUsers.uniqueName("cuda"));
        List<String> ids = given().auth().oauth2(key).multiPart("file", "spk2info.pt", spk2info("gpu-voice", e), "application/octet-stream")
                .post("/v1/speakers/import").then().statusCode(201).body("$", hasSize(1)).body("[0].name", equalTo("gpu-voice"))
                .extract().path("id");
        SpeakerFlowTests.checkWav(SpeakerFlowTests.tts(key, "{\"text\":\"Hi.\",\"speakerId\":\"" + ids.get(0) + "\"}"));
    }

    @Test
    void anExportedFeatureFileImportsAgainWithTheSameFeatures() {
        String key = TestUsers.createUser(TestUsers.uniqueName("reimport"));
        String id = given().auth().oauth2(key).multiPart("file", "spk2info.pt", spk2info("tone", CraftedPickles.entry(tone)), "application/octet-stream")
                .post("/v1/speakers/import").then().statusCode(201).extract().path("[0].id");
        byte[] exported = given().auth().oauth2(key).get("/v1/speakers/" + id + "/features").then().statusCode(200).extract().asByteArray();
        String again = given().auth().oauth2(key).multiPart("file", "tone-copy.pt", exported, "application/octet-stream")
                .post("/v1/speakers/import").then().statusCode(201).body("[0].name", equalTo("tone-copy")).extract().path("[0].id");
        byte[] twice = given().auth().oauth2(key).get("/v1/speakers/" + again + "/features").then().statusCode(200).extract().asByteArray();
        assertTrue(Arrays.equals(exported, twice), "export -> import -> export gives the same bytes");
        byte[] a = SpeakerFlowTests.checkWav(SpeakerFlowTests.tts(key, "{\"text\":\"Hi.\",\"seed\":4,\"speakerId\":\"" + id + "\"}"));
        byte[] b = SpeakerFlowTests.checkWav(SpeakerFlowTests.tts(key, "{\"text\":\"Hi.\",\"seed\":4,\"speakerId\":\"" + again + "\"}"));
        assertTrue(Arrays.equals(a, b), "the re-imported speaker sounds the same");
    }

    // ---------------------------------------------------------------------------------------- helpers

    static LinkedHashMap<String, Object> spk2infoMap(String id, Map<String, Object> entry) {
        LinkedHashMap<String, Object> root = new LinkedHashMap<>();
        root.put(id, entry);
        return root;
    }

    static byte[] spk2info(String id, Map<String, Object> entry) {
        return CraftedPickles.file(spk2infoMap(id, entry));
    }

    /** Imports {@code file} as a fresh user while another synthesizes; see {@link Refusals}. */
    void refused(byte[] file, int status, String slug, String... detail) {
        String key = TestUsers.createUser(TestUsers.uniqueName("attacker"));
        refusals.refused(key, () -> Refusals.importFile(key, file), status, slug, detail);
    }

    static long rssKb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (java.io.IOException e) {
            return -1;
        }
        return -1;
    }
}
