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

    /** Inference settings. */
    interface Engine {
        /** LibTorch intra-op threads; 0 keeps LibTorch's default (the number of cores). */
        @WithDefault("0")
        int threads();

        /** Workers that run the flow and vocoder of one request's segments in parallel (the reference uses 2). */
        @WithDefault("2")
        int segmentWorkers();

        /** Requests synthesized at once; more wait (up to queue-timeout) or get 503. */
        @WithDefault("2")
        int concurrentRequests();

        /** How long a request may wait for a synthesis slot before it is answered 503. */
        @WithDefault("60s")
        java.time.Duration queueTimeout();

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
