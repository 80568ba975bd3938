package io.timbre.speaker;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.timbre.account.TestUsers;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.TorchSave;
import io.timbre.engine.Engine;
import jakarta.inject.Inject;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.hasSize;

/**
 * Small uploads cannot become huge: an import's file size and entry count, and each user's speakers and feature
 * bytes, are bounded; a refusal names the limit, writes nothing, and does not disturb another user.
 */
@QuarkusTest
@TestProfile(ImportLimitsTests.SmallLimits.class)
class ImportLimitsTests {
    public static final class SmallLimits implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("timbre.limits.import-bytes", "1000000", "timbre.limits.import-entries", "3",
                    "timbre.limits.speakers-per-user", "4", "timbre.limits.feature-bytes-per-user", "600000");
        }
    }

    @Inject
    Engine engine;
    @Inject
    FeatureStore store;

    static SpeakerFeatures.Data tone;
    static Refusals refusals;

    @BeforeEach
    void setUp() throws Exception {
        if (tone == null) {
            tone = SpeakerFeatures.readSpk2info(Files.readAllBytes(HostileImportTests.GOLDEN), engine.featureSchema(),
                    TorchSave.Limits.of(1 << 24), 100, "x").get("tone");
            refusals = new Refusals(store);
        }
    }

    static byte[] tones(String... names) {
        LinkedHashMap<String, Object> root = new LinkedHashMap<>();
        for (String n : names) {
            root.put(n, CraftedPickles.entry(tone));
        }
        return CraftedPickles.file(root);
    }

    @Test
    void aFileOverTheImportSizeLimitIsRefusedUnread() {
        String key = TestUsers.createUser(TestUsers.uniqueName("big"));
        byte[] file = new byte[1_000_001];
        refusals.refused(key, () -> Refusals.importFile(key, file), 413, "import-too-large",
                "1000001 bytes", "at most 1000000", "timbre.limits.import-bytes");
    }

    @Test
    void moreEntriesThanTheLimitAreRefusedEvenWhenTheyAreOneEntryRepeated() {
        String key = TestUsers.createUser(TestUsers.uniqueName("entries"));
        byte[] four = tones("a", "b", "c", "d");
        refusals.refused(key, () -> Refusals.importFile(key, four), 413, "spk2info-too-large",
                "holds 4 speakers", "at most 3", "timbre.limits.import-entries");
        var one = CraftedPickles.entry(tone);
        LinkedHashMap<String, Object> root = new LinkedHashMap<>();
        for (int i = 0; i < 2000; i++) {
            root.put("s" + i, one);   // 2000 names for one entry: a few KB more than one entry
        }
        byte[] repeated = CraftedPickles.file(root);
        refusals.refused(key, () -> Refusals.importFile(key, repeated), 413, "spk2info-too-large", "holds 2000 speakers");
    }

    @Test
    void speakersPerUserBoundImportsAndRegistrations() throws Exception {
        String key = TestUsers.createUser(TestUsers.uniqueName("many"));
        Refusals.importFile(key, tones("a", "b", "c")).then().statusCode(201).body("$", hasSize(3));
        refusals.refused(key, () -> Refusals.importFile(key, tones("d", "e")), 409, "speaker-quota",
                "You have 3 speakers", "limit of 4", "timbre.limits.speakers-per-user");
        TestUsers.registerSpeaker(key, "fourth");
        refusals.refused(key, () -> given().auth().oauth2(key).multiPart("name", "fifth")
                        .multiPart("promptText", "A steady vowel for the speaker prompt.")
                        .multiPart("audio", "prompt.wav", read(TestUsers.PROMPT), "audio/wav").post("/v1/speakers"),
                409, "speaker-quota", "You have 4 speakers");
    }

    @Test
    void featureBytesPerUserBoundImports() {
        String key = TestUsers.createUser(TestUsers.uniqueName("bytes"));
        Refusals.importFile(key, big("big1", 1)).then().statusCode(201);
        byte[] second = big("big2", 2);
        refusals.refused(key, () -> Refusals.importFile(key, second), 409, "feature-quota",
                "limit of 600000 bytes", "timbre.limits.feature-bytes-per-user");
    }

    /** One entry with 700 prompt tokens (28 s): a feature file of about 450 KB. */
    private static byte[] big(String name, long seed) {
        Random r = new Random(seed);
        int n = 700;
        int[] tokens = new int[n];
        float[] feat = new float[2 * n * 80];
        for (int i = 0; i < n; i++) {
            tokens[i] = r.nextInt(6561);
        }
        for (int i = 0; i < feat.length; i++) {
            feat[i] = (float) r.nextGaussian();
        }
        LinkedHashMap<String, Object> root = new LinkedHashMap<>();
        root.put(name, CraftedPickles.entry(new SpeakerFeatures.Data(tone.promptText(), tokens, feat, tone.embedding())));
        return CraftedPickles.file(root);
    }

    private static byte[] read(java.nio.file.Path p) {
        try {
            return Files.readAllBytes(p);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
