package io.timbre.speaker;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.Set;

import org.jboss.logging.Logger;

import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.runtime.StartupEvent;
import io.timbre.config.TimbreConfig;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;

/**
 * Removes what an interrupted registration (kill -9, power loss) leaves in the feature directory: temporary files
 * and feature files that no speaker row names. Several replicas may share the directory, and another one may be
 * between writing a file and committing its row: only files older than {@code timbre.feature-cleanup-grace} go.
 */
@ApplicationScoped
public class FeatureJanitor {
    private static final Logger LOG = Logger.getLogger(FeatureJanitor.class);

    private final FeatureStore store;
    private final Duration grace;

    FeatureJanitor(FeatureStore store, TimbreConfig config) {
        this.store = store;
        this.grace = config.featureCleanupGrace();
    }

    void atStartup(@Observes StartupEvent ignored) {
        try {
            removeLeftovers();
        } catch (RuntimeException e) {
            LOG.warnf("feature directory clean-up skipped: %s", e.toString());   // never a reason not to start
        }
    }

    /** Removes temporary and orphan files older than the grace period; returns how many. */
    public int removeLeftovers() {
        Path dir = store.dir();
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        Instant cutoff = Instant.now().minus(grace);
        Set<String> referenced = new HashSet<>(QuarkusTransaction.requiringNew().call(() -> Speaker.getEntityManager()
                .createQuery("select s.featurePath from Speaker s where s.featurePath is not null", String.class)
                .getResultList()));
        int removed = 0;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
            for (Path file : files) {
                String name = file.getFileName().toString();
                boolean temporary = name.startsWith(".") && name.endsWith(".tmp");
                boolean orphan = name.endsWith(".pt") && !referenced.contains(name);
                if ((temporary || orphan) && Files.isRegularFile(file)
                        && Files.getLastModifiedTime(file).toInstant().isBefore(cutoff)) {
                    Files.deleteIfExists(file);
                    removed++;
                }
            }
        } catch (IOException e) {
            LOG.warnf("feature directory clean-up stopped: %s", e.toString());
        }
        if (removed > 0) {
            LOG.infof("removed %d temporary or orphan feature files from %s", removed, dir);
        }
        return removed;
    }
}
