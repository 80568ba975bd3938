package io.timbre.db;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
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
}
