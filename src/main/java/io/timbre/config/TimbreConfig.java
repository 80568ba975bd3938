package io.timbre.config;

import java.util.Optional;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** Timbre's own settings ({@code timbre.*}; environment {@code TIMBRE_*}). */
@ConfigMapping(prefix = "timbre")
public interface TimbreConfig {

    /**
     * Bearer key that may create users ({@code TIMBRE_ADMIN_KEY}). Required in prod; dev and test use
     * {@code timbre-dev-admin-key}, which the packaged app refuses; the embedded profile generates one when unset
     * ({@link io.timbre.account.AdminKey}).
     */
    Optional<String> adminKey();

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

    /**
     * At startup, temporary and orphan feature files older than this are removed; younger ones may belong to a
     * registration of another replica sharing the directory ({@code TIMBRE_FEATURE_CLEANUP_GRACE}).
     */
    @WithDefault("10m")
    java.time.Duration featureCleanupGrace();

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

        /** ONNX Runtime intra-op threads of the speaker encoder and speech tokenizer sessions (CosyVoice: 1). */
        @WithDefault("1")
        int onnxIntraOpThreads();

        /** ONNX Runtime inter-op threads of those sessions (they run sequentially). */
        @WithDefault("1")
        int onnxInterOpThreads();

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

        /**
         * Flow batching across requests: most flow runs (hops or segments, of any requests) whose estimator steps run
         * as one stacked call; segment workers are raised to at least this many. 1: every flow runs alone, and a
         * request's audio is byte-identical whatever runs beside it; above 1 it agrees to float rounding (see
         * io.timbre.engine.FlowBatcher).
         */
        @WithDefault("1")
        int flowBatch();

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

        /**
         * When freed host memory goes back to the OS (malloc_trim): never, per-request, watermark or idle (when
         * the last request in flight finishes, and past host-memory-watermark); see io.timbre.engine.HostMemory.
         */
        @WithDefault("idle")
        String hostMemoryPolicy();

        /** Resident bytes above which watermark and idle trim after a request ("0": idle trims only when idle). */
        @WithDefault("1536m")
        String hostMemoryWatermark();
    }

    Http http();

    /** Limits on what clients can hold ({@code timbre.http.*}). */
    interface Http {
        /**
         * Longest time a request body may take to arrive; a client still sending after it gets 408 and its
         * connection is closed. Bounds how long slow clients can hold a connection and an upload slot.
         */
        @WithDefault("60s")
        java.time.Duration bodyTimeout();

        /** Uploads (multipart, chunked or over 1 MiB) received at once; one more gets 503 with Retry-After. */
        @WithDefault("32")
        int maxConcurrentUploads();

        /** Failed authentications a client (IP address) may make in a burst before it gets 429. */
        @WithDefault("20")
        int authFailureBurst();

        /** How often a client regains one failed-authentication attempt once its burst is spent. */
        @WithDefault("5s")
        java.time.Duration authFailureRefill();

        /** Clients (IP addresses) whose failed attempts are remembered; the least recently seen are forgotten. */
        @WithDefault("10000")
        int authFailureClients();

        /**
         * Who may read {@code /q/metrics}, {@code /q/openapi} and {@code /q/swagger-ui} on the HTTP port:
         * {@code key} (the admin key or {@link #metricsKey()} as a Bearer key; 401 otherwise), {@code off} (404) or
         * {@code open}. Health is never gated. Dev mode and tests use {@code open}.
         */
        @WithDefault("key")
        String internalEndpoints();

        /** A second Bearer key that may read the internal endpoints only (for Prometheus), besides the admin key. */
        Optional<String> metricsKey();
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
