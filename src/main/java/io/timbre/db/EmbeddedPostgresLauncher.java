package io.timbre.db;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.lang.ref.Reference;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.jboss.logging.Logger;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;

/**
 * Starts one real PostgreSQL server per JVM for the dev, test and {@code embedded} profiles.
 * <p>
 * The config source factory that calls this runs during augmentation, at application start and again in
 * every live-reload or test-profile class loader, each with its own copy of this class. Static fields are
 * therefore not shared; the JVM-wide state is the system property {@link #URL_PROPERTY}, and the lock is an
 * interned string literal, which is the same object for every class loader.
 */
public final class EmbeddedPostgresLauncher {

    /** System property holding the JDBC URL once the server runs; outside the {@code timbre.} config prefix. */
    public static final String URL_PROPERTY = "io.timbre.embedded-postgres.jdbc-url";
    public static final String USERNAME = "postgres";
    public static final String PASSWORD = "postgres";

    private static final Logger LOG = Logger.getLogger(EmbeddedPostgresLauncher.class);
    private static final String JVM_LOCK = "io.timbre.db.EmbeddedPostgresLauncher#JVM_LOCK";
    private static final Duration ORPHAN_STOP_WAIT = Duration.ofSeconds(30);
    private static final String EPHEMERAL_PREFIX = "timbre-test-";
    private static final Duration ABANDONED_AFTER = Duration.ofMinutes(1);

    private EmbeddedPostgresLauncher() {
    }

    /**
     * Returns the JDBC URL of this JVM's embedded server, starting it on first use.
     *
     * @param dataDir   the parent directory; PostgreSQL keeps its files in {@code dataDir/postgres}
     * @param ephemeral true to use a fresh temporary directory (deleted at exit) instead of {@code dataDir}
     */
    public static String jdbcUrl(Path dataDir, boolean ephemeral) {
        synchronized (JVM_LOCK) {
            String url = System.getProperty(URL_PROPERTY);
            if (url != null) {
                return url;
            }
            try {
                url = start(dataDir, ephemeral);
            } catch (IOException e) {
                throw new UncheckedIOException("Could not start the embedded PostgreSQL: " + e.getMessage(), e);
            }
            System.setProperty(URL_PROPERTY, url);
            return url;
        }
    }

    private static String start(Path dataDir, boolean ephemeral) throws IOException {
        long started = System.nanoTime();
        Path parent;
        if (ephemeral) {
            Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
            reapAbandonedEphemeralDirectories(tmp, ABANDONED_AFTER);
            parent = Files.createTempDirectory(tmp, EPHEMERAL_PREFIX);
        } else {
            parent = dataDir.toAbsolutePath().normalize();
            Files.createDirectories(parent);
        }
        Path pgDir = parent.resolve("postgres");
        holdDirectoryLock(parent);
        if (!ephemeral) {
            requireUnlocked(pgDir);
            stopOrphanedPostmaster(pgDir);
        }
        EmbeddedPostgres.Builder builder = EmbeddedPostgres.builder()
                .setDataDirectory(pgDir)
                .setCleanDataDirectory(false)
                // An ephemeral server is stopped by our own hook, which must delete its files after the stop.
                .setRegisterShutdownHook(!ephemeral)
                .setPGStartupWait(Duration.ofSeconds(30));
        if (!ephemeral) {
            // zonky favours speed (fsync off, asynchronous commit); a persistent database must survive a crash.
            builder.setServerConfig("fsync", "on").setServerConfig("synchronous_commit", "on");
        }
        EmbeddedPostgres postgres = builder.start();
        if (ephemeral) {
            Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteAfterStop(postgres, parent),
                    "timbre-embedded-postgres-cleanup"));
        }
        String url = postgres.getJdbcUrl(USERNAME, "postgres");
        LOG.infof("Embedded PostgreSQL ready in %d ms on port %d, data in %s",
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started), postgres.getPort(), pgDir);
        return url;
    }

    /**
     * Holds an exclusive lock on {@code parent/postgres.lock} until the JVM exits, so that a second process
     * pointed at the same data directory fails clearly instead of stopping this process's server, and so
     * that a temporary directory in use is not taken for an abandoned one.
     */
    private static void holdDirectoryLock(Path parent) throws IOException {
        FileChannel channel = new RandomAccessFile(parent.resolve("postgres.lock").toFile(), "rw").getChannel();
        FileLock lock = channel.tryLock();
        if (lock == null) {
            channel.close();
            throw inUse(parent);
        }
        // An unreachable channel is closed by its cleaner, which releases the lock. Static fields do not
        // outlive this class loader, so a shutdown hook (kept until exit) holds the channel instead.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> Reference.reachabilityFence(channel),
                "timbre-embedded-postgres-lock"));
    }

    /**
     * A test JVM that is killed (timeout, SIGKILL) cannot run its shutdown hook: its temporary server keeps
     * running and its directory stays. Such a directory is recognisable by a {@code postgres.lock} that no
     * process holds; stop its server and delete it. Younger directories are skipped, so that one being set up
     * right now is never mistaken for an abandoned one.
     */
    static void reapAbandonedEphemeralDirectories(Path root, Duration minAge) {
        try (Stream<Path> dirs = Files.list(root)) {
            dirs.filter(dir -> dir.getFileName().toString().startsWith(EPHEMERAL_PREFIX))
                    .filter(dir -> Files.isRegularFile(dir.resolve("postgres.lock")))
                    .filter(dir -> olderThan(dir.resolve("postgres.lock"), minAge))
                    .forEach(EmbeddedPostgresLauncher::reapIfAbandoned);
        } catch (IOException | RuntimeException e) {
            LOG.debugf("Could not look for abandoned test databases in %s: %s", root, e);
        }
    }

    private static void reapIfAbandoned(Path dir) {
        try (FileChannel channel = new RandomAccessFile(dir.resolve("postgres.lock").toFile(), "rw").getChannel();
                FileLock lock = channel.tryLock()) {
            if (lock == null) {
                return; // its JVM still runs
            }
            LOG.infof("Removing the test database %s abandoned by a JVM that did not exit cleanly", dir);
            stopOrphanedPostmaster(dir.resolve("postgres"));
            deleteRecursively(dir);
        } catch (OverlappingFileLockException e) {
            // held by this JVM
        } catch (IOException | RuntimeException e) {
            LOG.warnf("Could not remove the abandoned test database %s: %s", dir, e.getMessage());
        }
    }

    private static boolean olderThan(Path file, Duration age) {
        try {
            return Files.getLastModifiedTime(file).toInstant().isBefore(Instant.now().minus(age));
        } catch (IOException e) {
            return false;
        }
    }

    /** zonky locks {@code epg-lock} in the data directory while its server runs: a second line of defence. */
    private static void requireUnlocked(Path pgDir) throws IOException {
        Path zonkyLock = pgDir.resolve("epg-lock");
        if (!Files.exists(zonkyLock)) {
            return;
        }
        try (FileChannel channel = new RandomAccessFile(zonkyLock.toFile(), "rw").getChannel();
                FileLock lock = channel.tryLock()) {
            if (lock == null) {
                throw inUse(pgDir.getParent());
            }
        }
    }

    private static IllegalStateException inUse(Path parent) {
        return new IllegalStateException("Another process is using the embedded database in " + parent
                + "; stop it, or set timbre.data-dir (TIMBRE_DATA_DIR) to another directory.");
    }

    /**
     * A killed JVM (SIGKILL, crash) leaves its postmaster running and its {@code postmaster.pid} behind, and
     * PostgreSQL refuses to start on that directory. We hold the directory lock, so a live postmaster on it
     * is an orphan: stop it. A pid file whose process is gone (or is something else) is simply stale.
     */
    static void stopOrphanedPostmaster(Path pgDir) throws IOException {
        Path pidFile = pgDir.resolve("postmaster.pid");
        if (!Files.exists(pidFile)) {
            return;
        }
        Optional<Long> pid = readPid(pidFile);
        Optional<ProcessHandle> process = pid.flatMap(ProcessHandle::of).filter(ProcessHandle::isAlive);
        if (process.isPresent() && commandLine(process.get()).contains(pgDir.toString())) {
            ProcessHandle postmaster = process.get();
            LOG.warnf("Stopping orphaned PostgreSQL (pid %d) left running on %s", postmaster.pid(), pgDir);
            postmaster.destroy();
            if (!waitForExit(postmaster, ORPHAN_STOP_WAIT)) {
                LOG.warnf("PostgreSQL pid %d did not stop in %s; killing it", postmaster.pid(), ORPHAN_STOP_WAIT);
                postmaster.destroyForcibly();
                waitForExit(postmaster, ORPHAN_STOP_WAIT);
            }
        } else {
            LOG.infof("Removing stale %s (process %s is not running PostgreSQL on this directory)", pidFile,
                    pid.map(String::valueOf).orElse("unknown"));
        }
        Files.deleteIfExists(pidFile);
    }

    private static Optional<Long> readPid(Path pidFile) throws IOException {
        List<String> lines = Files.readAllLines(pidFile, StandardCharsets.UTF_8);
        if (lines.isEmpty()) {
            return Optional.empty();
        }
        try {
            return Optional.of(Long.parseLong(lines.get(0).trim()));
        } catch (NumberFormatException e) {
            return Optional.empty();
        }
    }

    private static String commandLine(ProcessHandle process) {
        Path cmdline = Path.of("/proc", Long.toString(process.pid()), "cmdline");
        try {
            return new String(Files.readAllBytes(cmdline), StandardCharsets.UTF_8).replace('\0', ' ');
        } catch (IOException | RuntimeException e) {
            return process.info().commandLine().orElse("");
        }
    }

    private static boolean waitForExit(ProcessHandle process, Duration timeout) {
        try {
            process.onExit().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            return true;
        } catch (java.util.concurrent.TimeoutException e) {
            return false;
        } catch (java.util.concurrent.ExecutionException e) {
            return !process.isAlive();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return !process.isAlive();
        }
    }

    private static void deleteAfterStop(EmbeddedPostgres postgres, Path dir) {
        try {
            postgres.close();
        } catch (IOException e) {
            LOG.warn("Could not stop the embedded PostgreSQL", e);
        }
        deleteRecursively(dir);
    }

    private static void deleteRecursively(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            LOG.warnf("Could not delete %s: %s", dir, e.getMessage());
        }
    }
}
