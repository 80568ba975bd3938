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

    /** Read by {@code io.timbre.db.EmbeddedPostgresConfigSourceFactory} before CDI exists; listed here for docs. */
    interface EmbeddedPostgres {

        /** Force the embedded PostgreSQL on or off; by default on for the dev, test and embedded profiles. */
        Optional<Boolean> enabled();

        /** Use a fresh temporary directory, deleted at exit, instead of {@code timbre.data-dir} (tests). */
        @WithDefault("false")
        boolean ephemeral();
    }
}
