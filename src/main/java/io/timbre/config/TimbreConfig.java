package io.timbre.config;

import java.util.Optional;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** Timbre's own settings ({@code timbre.*}; environment {@code TIMBRE_*}). */
@ConfigMapping(prefix = "timbre")
public interface TimbreConfig {

    /**
     * Bearer key that may create users ({@code TIMBRE_ADMIN_KEY}). Required in prod; dev, test and
     * embedded use {@code timbre-dev-admin-key}.
     */
    String adminKey();

    /** Directory for the embedded PostgreSQL and other local state ({@code TIMBRE_DATA_DIR}). */
    @WithDefault("./data")
    String dataDir();

    EmbeddedPostgres embeddedPostgres();

    /** The model pack directory ({@code TIMBRE_MODEL_PACK}); the committed tiny pack by default. */
    @WithDefault("models/tiny")
    String modelPack();

    /** Where the model runs: cpu, cuda or cuda:N ({@code TIMBRE_DEVICE}). */
    @WithDefault("cpu")
    String device();

    /** Feature files; default {@code <data-dir>/features} ({@code TIMBRE_FEATURE_DIR}). */
    Optional<String> featureDir();

    Engine engine();

    Limits limits();

    /** Per-import and per-user bounds on speakers (a refusal names the limit it hit). */
    interface Limits {
        /** Largest spk2info.pt accepted by an import, in bytes (413 above). */
        @WithDefault("16777216")
        long importBytes();

        /** Most speakers in one spk2info.pt (413 above). */
        @WithDefault("100")
        int importEntries();

        /** Most speakers one user may have (409 above). */
        @WithDefault("500")
        int speakersPerUser();

        /** Most feature-file bytes one user's speakers may hold on disk (409 above). */
        @WithDefault("268435456")
        long featureBytesPerUser();
    }

    /** Inference settings. */
    interface Engine {
        /** LibTorch intra-op threads; 0 keeps LibTorch's default (the number of cores). */
        @WithDefault("0")
        int threads();

        /** Workers that run the flow and vocoder of one request's segments in parallel (the reference uses 2). */
        @WithDefault("2")
        int segmentWorkers();

        /**
         * Share LLM decode steps across requests (continuous batching). Off: one request at a time, each to its
         * end, as the reference servers do (for comparison; see the load benchmark).
         */
        @WithDefault("true")
        boolean batching();

        /** Most sequences (segments of any request) in one LLM decode step. */
        @WithDefault("16")
        int maxBatch();

        /** Most requests waiting to join the batch; one more is answered 503 with Retry-After. */
        @WithDefault("64")
        int queueSize();

        /** Longest wait to join the batch (or for a feature-extraction slot) before a request is answered 503. */
        @WithDefault("60s")
        java.time.Duration queueTimeout();

        /**
         * Finished segments that may wait for a flow worker; while they do, no new segment joins the LLM batch, so
         * waiting requests stay in the bounded queue (503 + Retry-After once it is full).
         */
        @WithDefault("8")
        int flowBacklog();

        /** Feature extractions (zero-shot prompts, repairs of lost feature files) at once; more wait. */
        @WithDefault("2")
        int concurrentExtractions();

        /** In-memory speaker-feature cache, bounded in native bytes. */
        @WithDefault("268435456")
        long featureCacheBytes();

        /** CUDA caching allocator policy: never, per-request or watermark (then watermark-bytes). */
        @WithDefault("per-request")
        String memoryPolicy();

        @WithDefault("2g")
        String memoryWatermark();
    }

    /** Read by {@code io.timbre.db.EmbeddedPostgresConfigSourceFactory} before CDI exists; listed here for docs. */
    interface EmbeddedPostgres {

        /** Force the embedded PostgreSQL on or off; by default on for the dev, test and embedded profiles. */
        Optional<Boolean> enabled();

        /** Use a fresh temporary directory, deleted at exit, instead of {@code timbre.data-dir} (tests). */
        @WithDefault("false")
        boolean ephemeral();
    }
}
