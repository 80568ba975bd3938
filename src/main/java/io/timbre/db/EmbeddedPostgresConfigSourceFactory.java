package io.timbre.db;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.eclipse.microprofile.config.spi.ConfigSource;

import io.smallrye.config.ConfigSourceContext;
import io.smallrye.config.ConfigSourceFactory;
import io.smallrye.config.ConfigValue;
import io.smallrye.config.PropertiesConfigSource;

/**
 * Supplies the datasource of an in-process PostgreSQL when no real one is configured.
 * <p>
 * Active for the profiles {@code dev}, {@code test} and {@code embedded} (or wherever
 * {@code timbre.embedded-postgres.enabled=true}). A {@code quarkus.datasource.jdbc.url} with an ordinal of
 * 100 or more (application.properties, environment, system properties) wins; lower ordinals are ignored
 * because a URL seen during a build is recorded into the runtime defaults at ordinal 0.
 * <p>
 * In the other profiles (prod) without a URL, the application stops at start with a message naming
 * {@code QUARKUS_DATASOURCE_JDBC_URL}.
 */
public class EmbeddedPostgresConfigSourceFactory implements ConfigSourceFactory {

    static final String JDBC_URL = "quarkus.datasource.jdbc.url";
    static final int ORDINAL = 150;
    private static final int MIN_REAL_ORDINAL = 100;
    private static final Set<String> EMBEDDED_PROFILES = Set.of("dev", "test", "embedded");

    @Override
    public Iterable<ConfigSource> getConfigSources(ConfigSourceContext context) {
        if (hasRealUrl(context.getValue(JDBC_URL))) {
            return List.of();
        }
        if (!enabled(context)) {
            if (isRuntime()) {
                throw new IllegalStateException("No database configured. Set QUARKUS_DATASOURCE_JDBC_URL "
                        + "(and QUARKUS_DATASOURCE_USERNAME, QUARKUS_DATASOURCE_PASSWORD) to a PostgreSQL server, "
                        + "or run with -Dquarkus.profile=embedded to start an embedded PostgreSQL in "
                        + "timbre.data-dir.");
            }
            return List.of();
        }
        Path dataDir = Path.of(valueOr(context, "timbre.data-dir", "./data"));
        boolean ephemeral = Boolean.parseBoolean(valueOr(context, "timbre.embedded-postgres.ephemeral", "false"));
        String url = EmbeddedPostgresLauncher.jdbcUrl(dataDir, ephemeral);
        return List.of(new PropertiesConfigSource(Map.of(
                JDBC_URL, url,
                "quarkus.datasource.username", EmbeddedPostgresLauncher.USERNAME,
                "quarkus.datasource.password", EmbeddedPostgresLauncher.PASSWORD),
                "TimbreEmbeddedPostgres", ORDINAL));
    }

    private static boolean hasRealUrl(ConfigValue url) {
        return url != null && url.getValue() != null && !url.getValue().isBlank()
                && url.getConfigSourceOrdinal() >= MIN_REAL_ORDINAL;
    }

    private static boolean enabled(ConfigSourceContext context) {
        ConfigValue explicit = context.getValue("timbre.embedded-postgres.enabled");
        if (explicit != null && explicit.getValue() != null) {
            return Boolean.parseBoolean(explicit.getValue());
        }
        return context.getProfiles().stream().anyMatch(EMBEDDED_PROFILES::contains);
    }

    private static String valueOr(ConfigSourceContext context, String name, String fallback) {
        ConfigValue value = context.getValue(name);
        return value != null && value.getValue() != null && !value.getValue().isBlank() ? value.getValue() : fallback;
    }

    /** False while Quarkus builds the application (augmentation), where the URL is legitimately absent. */
    private static boolean isRuntime() {
        return io.quarkus.runtime.ExecutionMode.current() != io.quarkus.runtime.ExecutionMode.UNSET;
    }
}
