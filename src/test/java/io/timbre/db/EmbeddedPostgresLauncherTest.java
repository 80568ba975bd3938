package io.timbre.db;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;

/** Recovery from a JVM that was killed and left its PostgreSQL behind. */
class EmbeddedPostgresLauncherTest {

    @TempDir
    Path dir;

    @Test
    void aPidFileOfAFinishedProcessIsRemoved() throws Exception {
        Process finished = new ProcessBuilder("true").start();
        finished.waitFor(10, TimeUnit.SECONDS);
        Path pgDir = Files.createDirectories(dir.resolve("postgres"));
        Files.writeString(pgDir.resolve("postmaster.pid"), finished.pid() + "\n" + pgDir + "\n");

        EmbeddedPostgresLauncher.stopOrphanedPostmaster(pgDir);

        assertFalse(Files.exists(pgDir.resolve("postmaster.pid")));
    }

    @Test
    void aPidReusedByAnotherProgramIsLeftAlone() throws Exception {
        Process unrelated = new ProcessBuilder("sleep", "30").start();
        try {
            Path pgDir = Files.createDirectories(dir.resolve("postgres"));
            Files.writeString(pgDir.resolve("postmaster.pid"), unrelated.pid() + "\n" + pgDir + "\n");

            EmbeddedPostgresLauncher.stopOrphanedPostmaster(pgDir);

            assertTrue(unrelated.isAlive(), "a process that is not PostgreSQL on this directory was stopped");
            assertFalse(Files.exists(pgDir.resolve("postmaster.pid")));
        } finally {
            unrelated.destroyForcibly();
        }
    }

    @Test
    void anOrphanedPostmasterIsStopped() throws Exception {
        Path pgDir = dir.resolve("postgres");
        // A server whose owner "died": nobody will stop it but the launcher.
        EmbeddedPostgres.builder().setDataDirectory(pgDir).setCleanDataDirectory(false)
                .setRegisterShutdownHook(false).start();
        Optional<ProcessHandle> postmaster = ProcessHandle.of(
                Long.parseLong(Files.readAllLines(pgDir.resolve("postmaster.pid")).get(0).trim()));
        try {
            assertTrue(postmaster.isPresent() && postmaster.get().isAlive());

            EmbeddedPostgresLauncher.stopOrphanedPostmaster(pgDir);

            assertFalse(postmaster.get().isAlive(), "the orphaned postmaster still runs");
            assertFalse(Files.exists(pgDir.resolve("postmaster.pid")));
        } finally {
            // Not orphan.close(): its pg_ctl stop would find no server and log an error.
            postmaster.ifPresent(ProcessHandle::destroyForcibly);
        }
    }

    @Test
    void aTestDirectoryAbandonedByAKilledJvmIsRemovedWithItsServer() throws Exception {
        Path abandoned = Files.createDirectories(dir.resolve("timbre-test-123"));
        EmbeddedPostgres.builder().setDataDirectory(abandoned.resolve("postgres")).setCleanDataDirectory(false)
                .setRegisterShutdownHook(false).start();
        ProcessHandle postmaster = ProcessHandle.of(Long.parseLong(
                Files.readAllLines(abandoned.resolve("postgres/postmaster.pid")).get(0).trim())).orElseThrow();
        Files.createFile(abandoned.resolve("postgres.lock")); // written, and then unlocked by the dead JVM
        try {
            EmbeddedPostgresLauncher.reapAbandonedEphemeralDirectories(dir, Duration.ZERO);

            assertFalse(postmaster.isAlive(), "the abandoned postmaster still runs");
            assertFalse(Files.exists(abandoned));
        } finally {
            postmaster.destroyForcibly();
        }
    }

    @Test
    void aTestDirectoryInUseOrJustCreatedIsKept() throws Exception {
        Path inUse = Files.createDirectories(dir.resolve("timbre-test-in-use"));
        Path young = Files.createDirectories(dir.resolve("timbre-test-young"));
        Path unrelated = Files.createDirectories(dir.resolve("something-else"));
        for (Path d : new Path[] {inUse, young, unrelated}) {
            Files.createFile(d.resolve("postgres.lock"));
        }
        EmbeddedPostgresLauncher.reapAbandonedEphemeralDirectories(dir, Duration.ofHours(1));
        assertTrue(Files.exists(young), "a directory younger than the minimum age was removed");

        try (FileChannel channel = FileChannel.open(inUse.resolve("postgres.lock"), StandardOpenOption.WRITE);
                FileLock held = channel.lock()) {
            EmbeddedPostgresLauncher.reapAbandonedEphemeralDirectories(dir, Duration.ZERO);
            assertTrue(Files.exists(inUse), "a directory whose lock is held was removed");
        }
        assertTrue(Files.exists(unrelated));
    }
}
