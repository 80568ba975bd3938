package io.timbre.account;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Optional;
import java.util.Set;

import org.jboss.logging.Logger;

import io.quarkus.runtime.LaunchMode;
import io.quarkus.runtime.Startup;
import io.quarkus.runtime.configuration.ConfigUtils;
import io.timbre.config.TimbreConfig;
import jakarta.inject.Singleton;

/**
 * The admin key, settled at startup. A configured key is used as is, but the packaged app refuses to start with
 * a key published in this repository. Without one, the {@code embedded} profile generates a key at first start,
 * stores it in {@code <data-dir>/admin-key} (owner-only) so that restarts keep it, and logs it that once; any
 * other profile refuses to start.
 */
@Startup
@Singleton
public class AdminKey {

    private static final Logger LOG = Logger.getLogger(AdminKey.class);
    /** Keys anyone can read in this repository: the dev/test key and the secret template's placeholder. */
    static final Set<String> PUBLISHED = Set.of("timbre-dev-admin-key", "REPLACE_ME");
    static final String FILE = "admin-key";

    private final String key;

    AdminKey(TimbreConfig config) {
        LaunchMode mode = LaunchMode.current();
        this.key = resolve(config.adminKey(), Path.of(config.dataDir()), mode == LaunchMode.NORMAL,
                ConfigUtils.isProfileActive("embedded"));
    }

    /** True if {@code candidate} is the admin key (compared in constant time). */
    public boolean matches(String candidate) {
        return ApiKeys.secretEquals(candidate, key);
    }

    /**
     * @param packaged whether this is the packaged app (not dev mode, not tests): published keys are refused
     * @param embedded whether the embedded profile is active: a missing key is generated and kept in dataDir
     */
    public static String resolve(Optional<String> configured, Path dataDir, boolean packaged, boolean embedded) {
        Optional<String> set = configured.map(String::strip).filter(k -> !k.isEmpty());
        if (set.isPresent()) {
            if (packaged && PUBLISHED.contains(set.get())) {
                throw new IllegalStateException("timbre.admin-key (TIMBRE_ADMIN_KEY) is a key published with Timbre's "
                        + "sources; set a secret one (e.g. openssl rand -base64 32)"
                        + (embedded ? ", or leave it unset and one is generated in " + dataDir.resolve(FILE) : "") + ".");
            }
            return set.get();
        }
        if (!embedded) {
            throw new IllegalStateException("Set timbre.admin-key (TIMBRE_ADMIN_KEY): the bearer key that may create "
                    + "users (e.g. openssl rand -base64 32).");
        }
        return storedOrGenerated(dataDir.resolve(FILE));
    }

    private static String storedOrGenerated(Path file) {
        try {
            if (Files.isRegularFile(file)) {
                String stored = Files.readString(file, StandardCharsets.UTF_8).strip();
                if (!stored.isEmpty()) {
                    LOG.infof("Admin key: the one generated at first start, in %s", file.toAbsolutePath());
                    return stored;
                }
            }
            Files.createDirectories(file.toAbsolutePath().getParent());
            String generated = ApiKeys.generate();
            Path tmp = file.resolveSibling(FILE + ".tmp");
            Files.deleteIfExists(tmp);
            try {
                Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            } catch (UnsupportedOperationException notPosix) {
                Files.createFile(tmp);
            }
            Files.writeString(tmp, generated + "\n", StandardCharsets.UTF_8);
            try {
                Files.move(tmp, file);   // never replaces a key another process stored meanwhile
            } catch (FileAlreadyExistsException raced) {
                Files.delete(tmp);
                return Files.readString(file, StandardCharsets.UTF_8).strip();
            }
            LOG.warnf("No admin key was configured: generated one, stored in %s (shown only this once): %s",
                    file.toAbsolutePath(), generated);
            return generated;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot keep the generated admin key in " + file, e);
        }
    }
}
