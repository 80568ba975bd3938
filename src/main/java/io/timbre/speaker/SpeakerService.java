package io.timbre.speaker;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.narayana.jta.QuarkusTransaction;
import io.timbre.account.User;
import io.timbre.api.ApiProblem;
import io.timbre.api.TextInputs;
import io.timbre.audio.DecodedAudio;
import io.timbre.audio.InvalidAudioException;
import io.timbre.config.TimbreConfig;
import io.timbre.audio.AudioChecks;
import io.timbre.audio.AudioDecoder;
import io.timbre.audio.ImplausibleAudioException;
import io.timbre.audio.UnsupportedAudioException;
import io.timbre.engine.FeatureFileException;
import io.timbre.engine.PackManifest;
import io.timbre.engine.PromptPlan;
import io.timbre.engine.SpeakerFeatures;
import io.timbre.engine.TorchSave;
import io.timbre.engine.SpeakerExtraction;
import jakarta.enterprise.context.ApplicationScoped;
import org.hibernate.exception.ConstraintViolationException;
import org.jboss.logging.Logger;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;

/**
 * Speakers: registration (features computed once, file written atomically, row recorded), lookup, deletion,
 * import/export in CosyVoice's spk2info format, and feature resolution for synthesis: memory, else the file,
 * else re-extraction from the stored prompt audio (which also repairs the file).
 */
@ApplicationScoped
public class SpeakerService {
    private static final Logger LOG = Logger.getLogger(SpeakerService.class);
    public static final int MAX_NAME = 64;
    public static final int MAX_PROMPT_TEXT = 1000;

    private final SpeakerExtraction engine;
    private final FeatureStore store;
    private final TimbreConfig.Limits limits;
    private final Counter reextractions;

    SpeakerService(SpeakerExtraction engine, FeatureStore store, TimbreConfig config, MeterRegistry registry) {
        this.engine = engine;
        this.store = store;
        this.limits = config.limits();
        this.reextractions = Counter.builder("timbre.feature.reextractions")
                .description("features recomputed because the file was missing, corrupt or from another pack").register(registry);
    }

    /**
     * Where a synthesis got its speaker features from (X-Timbre-Speaker-Source): the cache, the feature file,
     * recomputed from the stored prompt because the file was missing or corrupt ({@code extracted}) or because the
     * features were made by another pack, e.g. before the deployment switched from CosyVoice 2 to CosyVoice 3
     * ({@code re-extracted}), or from the request's own recording ({@code zero-shot}).
     */
    public enum Source {
        MEMORY("memory"), FILE("file"), EXTRACTED("extracted"), REEXTRACTED("re-extracted"), ZERO_SHOT("zero-shot");

        private final String header;

        Source(String header) {
            this.header = header;
        }

        public String header() {
            return header;
        }
    }

    /** Features leased for one synthesis; close when done. */
    public record Resolved(SpeakerFeatures features, Source source, long nanos, FeatureStore.Lease lease) implements AutoCloseable {
        /** Gives the lease back; idempotent. */
        @Override
        public void close() {
            lease.close();
        }
    }

    // ------------------------------------------------------------------------------------ prompt audio
    /**
     * A prompt recording: mono samples at their own rate. The original rate is kept (not 16 kHz) because CosyVoice
     * resamples the upload straight to each rate a feature needs (16 kHz tokens/embedding, 24 kHz prompt mel).
     */
    public record PromptAudio(float[] samples, int sampleRate) {
    }

    /**
     * Decodes an upload (WAV, MP3, M4A, Ogg, FLAC or WebM), refuses implausible audio, checks its length and makes
     * it mono at its own rate (415 for a format not on the allow-list, 422 saying what is wrong otherwise).
     */
    public PromptAudio normalisePrompt(byte[] upload) {
        if (upload == null || upload.length == 0) {
            throw ApiProblem.unprocessable("audio-missing", "Audio missing", "The 'audio' part is empty; attach a recording of 3 to 30 seconds.");
        }
        PackManifest m = engine.manifest();
        DecodedAudio audio = audioProblems(() -> AudioDecoder.decode(upload, m.maxPromptSeconds()));
        if (audio.seconds() < m.minPromptSeconds()) {
            throw ApiProblem.unprocessable("audio-too-short", "Audio too short", String.format(
                    "The recording is %.2f s long; it must be at least %.0f s.", audio.seconds(), m.minPromptSeconds()));
        }
        if (audio.seconds() > m.maxPromptSeconds()) {
            throw ApiProblem.unprocessable("audio-too-long", "Audio too long", String.format(
                    "The recording is longer than %.0f s (%.2f s or more); trim it and try again.", m.maxPromptSeconds(), audio.seconds()));
        }
        audioProblems(() -> {
            AudioChecks.requirePlausible(audio);
            return audio;
        });
        float[] pcm = audio.samples();
        int max = (int) (m.maxPromptSeconds() * audio.sampleRate());
        return new PromptAudio(pcm.length > max ? java.util.Arrays.copyOf(pcm, max) : pcm, audio.sampleRate());
    }

    private static DecodedAudio audioProblems(java.util.function.Supplier<DecodedAudio> step) {
        try {
            return step.get();
        } catch (UnsupportedAudioException e) {
            throw new ApiProblem(415, "audio-unsupported", "Audio format not supported", e.getMessage());
        } catch (ImplausibleAudioException e) {
            throw ApiProblem.unprocessable(e.kind(), e.title(), e.getMessage());
        } catch (InvalidAudioException e) {
            throw ApiProblem.unprocessable("audio-invalid", "Audio not usable", e.getMessage());
        }
    }

    static byte[] toBytes(float[] pcm) {
        ByteBuffer b = ByteBuffer.allocate(pcm.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(pcm);
        return b.array();
    }

    static float[] toFloats(byte[] bytes) {
        float[] out = new float[bytes.length / 4];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    // ------------------------------------------------------------------------------------ registration
    public Speaker register(long ownerId, String name, String promptText, byte[] wav) {
        String n = checkName(name);
        String text = checkPromptText(promptText);
        QuarkusTransaction.requiringNew().run(() -> {
            requireFreeName(ownerId, n);
            requireQuota(ownerId, 1, 0);
        });
        PromptAudio prompt = normalisePrompt(wav);
        UUID id = UUID.randomUUID();
        PackManifest pack = engine.manifest();
        SpeakerFeatures features = engine.extract(prompt.samples(), prompt.sampleRate(),
                engine.promptPlan().speakerPromptText(text));
        FeatureStore.Written file = null;
        try {
            file = store.write(id, features.toFeatureFile());
            FeatureStore.Written f = file;
            Speaker saved = QuarkusTransaction.requiringNew().call(() -> {
                lockOwner(ownerId);
                requireFreeName(ownerId, n);
                requireQuota(ownerId, 1, f.bytes());
                Speaker s = new Speaker();
                s.id = id;
                s.owner = User.getEntityManager().getReference(User.class, ownerId);
                s.name = n;
                s.promptText = text;
                s.promptAudio = toBytes(prompt.samples());
                s.promptAudioBytes = s.promptAudio.length;
                s.promptSampleRate = prompt.sampleRate();   // the upload's own rate (rows before this: 16 kHz)
                record(s, f, pack);
                s.persist();
                s.flush();
                return s;
            });
            store.put(id, features, engine.packKey()).close();   // the cache owns the features now
            return saved;
        } catch (RuntimeException e) {
            features.close();
            if (file != null) {
                store.delete(file.path());   // a failed registration leaves no file
            }
            throw conflictIfDuplicate(e, n);
        }
    }

    private static void record(Speaker s, FeatureStore.Written f, PackManifest pack) {
        s.featurePath = f.path();
        s.featureSha256 = f.sha256();
        s.featureBytes = f.bytes();
        s.packName = pack.name();
        s.packVersion = pack.version();
    }

    private static void requireFreeName(long ownerId, String name) {
        if (Speaker.count("owner.id = ?1 and name = ?2", ownerId, name) > 0) {
            throw ApiProblem.conflict("You already have a speaker named '" + name + "'; choose another name or delete that speaker.");
        }
    }

    private static RuntimeException conflictIfDuplicate(RuntimeException e, String name) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof ConstraintViolationException) {
                return ApiProblem.conflict("You already have a speaker named '" + name + "'; choose another name.");
            }
        }
        return e;
    }

    static String checkName(String name) {
        TextInputs.requireNoNul("name", name);
        if (name == null || name.isBlank()) {
            throw ApiProblem.unprocessable("name-missing", "Name missing", "Give the speaker a 'name' (1 to " + MAX_NAME + " characters).");
        }
        String n = name.strip();
        if (n.length() > MAX_NAME) {
            throw ApiProblem.unprocessable("name-too-long", "Name too long", "The speaker name has " + n.length()
                    + " characters; use at most " + MAX_NAME + ".");
        }
        return n;
    }

    static String checkPromptText(String text) {
        TextInputs.requireNoNul("promptText", text);
        if (text == null || text.isBlank()) {
            throw ApiProblem.unprocessable("prompt-text-missing", "Transcript missing",
                    "Send 'promptText': the words spoken in the recording.");
        }
        if (text.length() > MAX_PROMPT_TEXT) {
            throw ApiProblem.unprocessable("prompt-text-too-long", "Transcript too long",
                    "The transcript has " + text.length() + " characters; a 30 s recording needs at most " + MAX_PROMPT_TEXT + ".");
        }
        return text.strip();
    }

    // ------------------------------------------------------------------------------------ lookup / delete
    public List<Speaker> list(long ownerId) {
        return QuarkusTransaction.requiringNew().call(() -> Speaker.<Speaker>list("owner.id = ?1 order by createdAt", ownerId));
    }

    public Speaker get(long ownerId, UUID id) {
        return QuarkusTransaction.requiringNew().call(() -> Speaker.findOwned(id, ownerId)
                .orElseThrow(() -> notFound(id)));
    }

    static ApiProblem notFound(UUID id) {
        return new ApiProblem(404, "speaker-not-found", "Speaker not found",
                "You have no speaker " + id + "; list yours with GET /v1/speakers.");
    }

    public void delete(long ownerId, UUID id) {
        Speaker s = get(ownerId, id);
        QuarkusTransaction.requiringNew().run(() -> Speaker.delete("id = ?1 and owner.id = ?2", id, ownerId));
        store.evict(id);
        store.delete(s.featurePath);
    }

    // ------------------------------------------------------------------------------------ features
    /** The features of a speaker for synthesis: memory, else the file, else re-extracted (file repaired). */
    public Resolved features(Speaker s) {
        long t0 = System.nanoTime();
        PackManifest pack = engine.manifest();
        Optional<FeatureStore.Lease> cached = store.lease(s.id, engine.packKey());
        if (cached.isPresent()) {
            return new Resolved(cached.get().features(), Source.MEMORY, System.nanoTime() - t0, cached.get());
        }
        boolean samePack = pack.name().equals(s.packName) && pack.version().equals(s.packVersion);
        if (samePack) {
            Optional<byte[]> file = store.read(s.featurePath);
            if (file.isPresent() && FeatureStore.sha256(file.get()).equals(s.featureSha256)) {
                try {
                    FeatureStore.Lease lease = store.put(s.id, engine.readFeatures(file.get()), engine.packKey());
                    return new Resolved(lease.features(), Source.FILE, System.nanoTime() - t0, lease);
                } catch (FeatureFileException e) {
                    LOG.warnf("feature file of speaker %s unreadable (%s): re-extracting", s.id, e.getMessage());
                }
            } else {
                LOG.warnf("feature file of speaker %s %s: re-extracting", s.id, file.isPresent() ? "corrupt (sha256)" : "missing");
            }
        } else {
            LOG.infof("speaker %s has features of pack %s@%s, this is %s: re-extracting", s.id, s.packName, s.packVersion, engine.packKey());
        }
        FeatureStore.Lease lease = reextract(s.id, pack, !samePack);
        return new Resolved(lease.features(), samePack ? Source.EXTRACTED : Source.REEXTRACTED, System.nanoTime() - t0, lease);
    }

    private FeatureStore.Lease reextract(UUID id, PackManifest pack, boolean otherPack) {
        record Prompt(float[] pcm, int rate, String text) {
        }
        Prompt p = QuarkusTransaction.requiringNew().call(() -> {
            Speaker s = Speaker.findById(id);
            if (s == null) {
                throw notFound(id);
            }
            if (s.promptAudio == null || s.promptAudio.length == 0) {
                throw new ApiProblem(409, "features-lost", "Speaker features lost", "The features of speaker " + id
                        + " were imported without a recording and " + (otherPack ? "were made by pack " + s.packName + "@"
                        + s.packVersion + ", not by the loaded " + engine.packKey() + " (" + engine.promptPlan().family().id
                        + "); import them again from a deployment of this pack, or register the speaker from a recording."
                        : "their file is missing or corrupt; import them again."));
            }
            return new Prompt(toFloats(s.promptAudio), s.promptSampleRate, s.promptText);
        });
        reextractions.increment();
        SpeakerFeatures f = engine.extract(p.pcm(), p.rate(), engine.promptPlan().speakerPromptText(p.text()));
        FeatureStore.Written w = null;
        try {
            w = store.write(id, f.toFeatureFile());
            FeatureStore.Written written = w;
            // The row lock orders this against a concurrent delete: either the delete comes after this commit
            // (and removes the new file itself), or the row is gone here and so must the file be.
            boolean recorded = QuarkusTransaction.requiringNew().call(() -> {
                Speaker s = Speaker.findById(id, jakarta.persistence.LockModeType.PESSIMISTIC_WRITE);
                if (s == null) {
                    return false;
                }
                record(s, written, pack);
                return true;
            });
            if (!recorded) {
                throw notFound(id);
            }
        } catch (RuntimeException e) {
            f.close();
            if (w != null) {
                store.delete(w.path());
            }
            throw e;
        }
        return store.put(id, f, engine.packKey());
    }

    // ------------------------------------------------------------------------------------ spk2info
    /** The speaker's feature file in CosyVoice's spk2info entry format (repaired first if needed). */
    public byte[] exportFeatures(long ownerId, UUID id) {
        Speaker s = get(ownerId, id);
        try (Resolved r = features(s)) {
            return r.features().toFeatureFile();
        }
    }

    /** The largest spk2info.pt an import accepts (timbre.limits.import-bytes). */
    public long importBytesLimit() {
        return limits.importBytes();
    }

    static ApiProblem importTooLarge(long bytes, long limit) {
        return new ApiProblem(413, "import-too-large", "Import file too large", "The file has " + bytes
                + " bytes; an import may have at most " + limit + " (limit timbre.limits.import-bytes).");
    }

    /**
     * Creates one speaker per entry of a CosyVoice spk2info.pt; all or nothing. The file is read by the restricted
     * reader and every entry checked against the pack's schema before any tensor, file or row exists. A single
     * entry's file (the feature export) becomes one speaker named {@code singleName}.
     */
    public List<Speaker> importSpk2info(long ownerId, byte[] data, String singleName) {
        return importSpk2info(ownerId, data, singleName, null);
    }

    /**
     * As {@link #importSpk2info(long, byte[], String)}, with the pack family the file says it is from
     * ({@code cosyvoice2}, {@code cosyvoice3}; null: inferred from each entry). Features belong to the family that
     * made them: a file of another family than the loaded pack's is refused (422 family-mismatch), since its speech
     * tokens and mel mean nothing to this pack's LLM and flow.
     */
    public List<Speaker> importSpk2info(long ownerId, byte[] data, String singleName, String statedFamily) {
        PromptPlan plan = engine.promptPlan();
        if (statedFamily != null && !statedFamily.isBlank() && !statedFamily.strip().equals(plan.family().id)) {
            String stated = statedFamily.strip();
            if (!stated.equals("cosyvoice2") && !stated.equals("cosyvoice3")) {
                throw ApiProblem.unprocessable("family-unknown", "Unknown pack family", "'family' is '" + stated
                        + "'; use cosyvoice2 or cosyvoice3 (the family of the deployment the file was exported from).");
            }
            throw familyMismatch("The file is from a " + stated + " deployment");
        }
        if (data == null || data.length == 0) {
            throw ApiProblem.unprocessable("file-missing", "File missing", "Attach a CosyVoice spk2info.pt as the 'file' part.");
        }
        if (data.length > limits.importBytes()) {
            throw importTooLarge(data.length, limits.importBytes());
        }
        Map<String, SpeakerFeatures.Data> parsed;
        try {
            parsed = SpeakerFeatures.readSpk2info(data, engine.featureSchema(), TorchSave.Limits.of(limits.importBytes()),
                    limits.importEntries(), singleName == null ? "imported" : singleName);
        } catch (FeatureFileException e) {
            if (e.tooLarge()) {
                throw new ApiProblem(413, "spk2info-too-large", "spk2info.pt too large", e.getMessage());
            }
            throw ApiProblem.unprocessable("spk2info-invalid", "Not a usable spk2info.pt", e.getMessage());
        }
        if (parsed.isEmpty()) {
            throw ApiProblem.unprocessable("spk2info-empty", "No speakers", "The spk2info.pt holds no speaker.");
        }
        for (Map.Entry<String, SpeakerFeatures.Data> e : parsed.entrySet()) {
            PromptPlan.Family made = plan.familyOf(e.getValue().promptText());
            if (made != plan.family()) {
                throw familyMismatch("Entry '" + e.getKey() + "' was made by " + made.id + " (its prompt_text "
                        + (made == PromptPlan.Family.COSYVOICE3 ? "holds" : "lacks") + " " + PromptPlan.END_OF_PROMPT + ")");
            }
        }
        List<String> names = new ArrayList<>();
        for (String id : parsed.keySet()) {
            try {
                names.add(checkName(id));
            } catch (ApiProblem p) {
                throw ApiProblem.unprocessable("spk2info-invalid", "Not a usable spk2info.pt",
                        "Speaker id '" + id + "' cannot be a speaker name: " + p.detail());
            }
        }
        List<byte[]> fileBytes = new ArrayList<>();
        long total = 0;
        for (SpeakerFeatures.Data d : parsed.values()) {
            byte[] f = d.toFeatureFile();
            fileBytes.add(f);
            total += f.length;
        }
        long needed = total;
        QuarkusTransaction.requiringNew().run(() -> requireQuota(ownerId, names.size(), needed));   // before anything is written
        PackManifest pack = engine.manifest();
        List<FeatureStore.Written> files = new ArrayList<>();
        List<UUID> ids = new ArrayList<>();
        List<SpeakerFeatures> features = new ArrayList<>();
        try {
            for (byte[] f : fileBytes) {
                UUID id = UUID.randomUUID();
                ids.add(id);
                files.add(store.write(id, f));
            }
            List<SpeakerFeatures.Data> values = new ArrayList<>(parsed.values());
            List<Speaker> saved = QuarkusTransaction.requiringNew().call(() -> {
                lockOwner(ownerId);
                requireQuota(ownerId, names.size(), needed);
                List<Speaker> out = new ArrayList<>();
                for (int i = 0; i < names.size(); i++) {
                    String n = names.get(i);
                    requireFreeName(ownerId, n);
                    Speaker s = new Speaker();
                    s.id = ids.get(i);
                    s.owner = User.getEntityManager().getReference(User.class, ownerId);
                    s.name = n;
                    s.promptText = "(imported) " + values.get(i).promptText().length + " text tokens";
                    s.promptAudio = new byte[0];   // imported: no recording, cannot be re-extracted
                    s.promptSampleRate = pack.promptSampleRate();
                    record(s, files.get(i), pack);
                    s.persist();
                    out.add(s);
                }
                Speaker.flush();
                return out;
            });
            for (int i = 0; i < ids.size(); i++) {
                features.add(values.get(i).toFeatures(engine.torchDevice()));
                store.put(ids.get(i), features.get(i), engine.packKey()).close();
            }
            return saved;
        } catch (RuntimeException e) {
            if (features.isEmpty()) {   // once the rows exist, the cache owns what it was given
                files.forEach(f -> store.delete(f.path()));
            }
            throw e;
        }
    }

    private ApiProblem familyMismatch(String what) {
        PromptPlan.Family here = engine.promptPlan().family();
        return ApiProblem.unprocessable("family-mismatch", "Features of another model family", what + "; this deployment "
                + "runs " + engine.packKey() + ", a " + here.id + " pack. Speaker features belong to the model that made "
                + "them: export them from a " + here.id + " deployment, or register the speaker here from its recording "
                + "(POST /v1/speakers). Nothing was imported.");
    }

    /** The family of the loaded pack, which exports and imports state. */
    public PromptPlan.Family packFamily() {
        return engine.promptPlan().family();
    }

    /** The loaded pack, name@version. */
    public String packKey() {
        return engine.packKey();
    }

    /** Serialises quota checks of one user's concurrent registrations and imports (row lock until commit). */
    private static void lockOwner(long ownerId) {
        User.getEntityManager().find(User.class, ownerId, jakarta.persistence.LockModeType.PESSIMISTIC_WRITE);
    }

    /** 409 naming the limit when {@code speakers} more speakers with {@code bytes} more feature bytes exceed it. */
    private void requireQuota(long ownerId, int speakers, long bytes) {
        long have = Speaker.count("owner.id = ?1", ownerId);
        if (have + speakers > limits.speakersPerUser()) {
            throw new ApiProblem(409, "speaker-quota", "Too many speakers", "You have " + have + " speakers; adding " + speakers
                    + " would exceed the limit of " + limits.speakersPerUser() + " per user (timbre.limits.speakers-per-user). Delete some first.");
        }
        Long used = User.getEntityManager().createQuery(
                "select coalesce(sum(s.featureBytes), 0) from Speaker s where s.owner.id = ?1", Long.class)
                .setParameter(1, ownerId).getSingleResult();
        if (used + bytes > limits.featureBytesPerUser()) {
            throw new ApiProblem(409, "feature-quota", "Feature storage full", "Your speakers' features use " + used
                    + " bytes; " + bytes + " more would exceed the limit of " + limits.featureBytesPerUser()
                    + " bytes per user (timbre.limits.feature-bytes-per-user). Delete some speakers first.");
        }
    }
}
