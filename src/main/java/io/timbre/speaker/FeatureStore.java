package io.timbre.speaker;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.timbre.api.ApiProblem;
import io.timbre.config.TimbreConfig;
import io.timbre.engine.SpeakerFeatures;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;

/**
 * Speaker features at rest and in memory. Files are written atomically (temporary file, fsync, rename) under
 * the feature directory, one per speaker; an LRU bounded in native bytes keeps recently used features loaded.
 * Cached features are leased: an evicted entry is closed only when its last lease is released.
 */
@ApplicationScoped
public class FeatureStore {
    private static final Logger LOG = Logger.getLogger(FeatureStore.class);
    /** Below this free space on its device the store reports itself full (readiness DOWN). */
    static final long MIN_FREE_BYTES = 16L << 20;
    private final Path dir;
    private final long maxBytes;
    private final LinkedHashMap<UUID, Entry> lru = new LinkedHashMap<>(16, 0.75f, true);
    private long bytes;
    private final Counter hits;
    private final Counter misses;
    private final Counter evictions;

    /** Features in the cache, with a count of users; closed when evicted and no longer used. */
    static final class Entry {
        final SpeakerFeatures features;
        final String packKey;
        int leases;
        boolean evicted;

        Entry(SpeakerFeatures features, String packKey) {
            this.features = features;
            this.packKey = packKey;
        }
    }

    /** A use of cached features; release it when the synthesis is done. */
    public final class Lease implements AutoCloseable {
        private final Entry entry;
        private boolean released;

        Lease(Entry entry) {
            this.entry = entry;
        }

        public SpeakerFeatures features() {
            return entry.features;
        }

        @Override
        public void close() {
            synchronized (FeatureStore.this) {
                if (!released) {
                    released = true;
                    entry.leases--;
                    if (entry.evicted && entry.leases == 0) {
                        entry.features.close();
                    }
                }
            }
        }
    }

    public record Written(String path, String sha256, long bytes) {
    }

    FeatureStore(TimbreConfig config, MeterRegistry registry) {
        this.dir = Path.of(config.featureDir().orElse(Path.of(config.dataDir(), "features").toString()));
        this.maxBytes = config.engine().featureCacheBytes();
        this.hits = Counter.builder("timbre.feature.cache").tag("result", "hit").register(registry);
        this.misses = Counter.builder("timbre.feature.cache").tag("result", "miss").register(registry);
        this.evictions = Counter.builder("timbre.feature.cache.evictions").register(registry);
        Gauge.builder("timbre.feature.cache.bytes", this, s -> s.cachedBytes()).baseUnit("bytes").register(registry);
    }

    /** Writes a speaker's feature file atomically; returns its path (relative to the feature dir), sha256, size. */
    public Written write(UUID speaker, byte[] data) {
        try {
            Files.createDirectories(dir);
            String name = speaker + ".pt";
            Path tmp = Files.createTempFile(dir, "." + speaker, ".tmp");
            try {
                try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                    ByteBuffer buf = ByteBuffer.wrap(data);
                    while (buf.hasRemaining()) {
                        ch.write(buf);
                    }
                    ch.force(true);
                }
                try {
                    Files.move(tmp, dir.resolve(name), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, dir.resolve(name), StandardCopyOption.REPLACE_EXISTING);
                }
            } finally {
                Files.deleteIfExists(tmp);
            }
            lastWriteFailure = null;
            return new Written(name, sha256(data), data.length);
        } catch (IOException e) {
            ApiProblem problem = problemFor(e);
            lastWriteFailure = new Failure(problem.status(), reason(e), System.nanoTime());
            LOG.warnf("cannot write the feature file of speaker %s in %s: %s", speaker, dir, e);
            throw problem;
        }
    }

    /** Why the last write failed, if it did: status 507 (full) or 503, a reason, and when. */
    record Failure(int status, String reason, long nanos) {
    }

    private volatile Failure lastWriteFailure;

    /** The answer to a failed write: 507 if the device is full, else 503 (read-only or otherwise unusable). */
    public static ApiProblem problemFor(IOException e) {
        if (isFull(e)) {
            return new ApiProblem(507, "feature-store-full", "Storage full",
                    "The server has no space left to store speaker features; nothing was saved. Retry later.");
        }
        return ApiProblem.serviceUnavailable("feature-store-unavailable", "Storage unavailable",
                "The server cannot store speaker features right now (" + reason(e) + "); nothing was saved. Retry later.",
                30);
    }

    static boolean isFull(IOException e) {
        String m = e instanceof FileSystemException fs ? fs.getReason() : e.getMessage();
        return m != null && (m.contains("No space left") || m.contains("Disk quota exceeded"));
    }

    /** A reason for people, without paths. */
    static String reason(IOException e) {
        if (isFull(e)) {
            return "no space left on the device";
        }
        if (e instanceof AccessDeniedException) {
            return "the feature directory is not writable";
        }
        String m = e instanceof FileSystemException fs ? fs.getReason() : e.getMessage();
        if (m != null && m.contains("Read-only file system")) {
            return "the feature directory is read-only";
        }
        if (e instanceof FileSystemException) {
            return "the feature directory is not usable";
        }
        return "an I/O error";
    }

    /**
     * Whether new feature files can be written now: empty if so, else why not. Probes the directory with a small
     * file and checks its free space; a write that failed for lack of space in the last minute also counts.
     */
    public Optional<String> unwritable() {
        try {
            Files.createDirectories(dir);
            Path probe = Files.createTempFile(dir, ".probe", ".tmp");
            Files.delete(probe);
            if (Files.getFileStore(dir).getUsableSpace() < MIN_FREE_BYTES) {
                return Optional.of("no space left on the device of the feature directory");
            }
        } catch (IOException e) {
            return Optional.of(reason(e));
        }
        Failure f = lastWriteFailure;
        if (f != null && f.status() == 507 && System.nanoTime() - f.nanos() < 60_000_000_000L) {
            return Optional.of(f.reason());
        }
        return Optional.empty();
    }

    /** The feature directory (for the startup clean-up). */
    Path dir() {
        return dir;
    }

    /** The file's bytes if it exists. */
    public Optional<byte[]> read(String path) {
        if (path == null) {
            return Optional.empty();
        }
        Path file = dir.resolve(path);
        try {
            return Files.isRegularFile(file) ? Optional.of(Files.readAllBytes(file)) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    public void delete(String path) {
        if (path != null) {
            try {
                Files.deleteIfExists(dir.resolve(path));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    public Path file(String path) {
        return dir.resolve(path);
    }

    /** Leases cached features computed by pack {@code packKey}, if present. */
    public synchronized Optional<Lease> lease(UUID speaker, String packKey) {
        Entry e = lru.get(speaker);
        if (e == null || !e.packKey.equals(packKey)) {
            misses.increment();
            return Optional.empty();
        }
        hits.increment();
        e.leases++;
        return Optional.of(new Lease(e));
    }

    /** Caches features (the store takes ownership) and returns a lease on them. */
    public synchronized Lease put(UUID speaker, SpeakerFeatures features, String packKey) {
        Entry old = lru.remove(speaker);
        if (old != null) {
            retire(old);
        }
        Entry e = new Entry(features, packKey);
        e.leases = 1;
        lru.put(speaker, e);
        bytes += features.nativeBytes();
        Iterator<Map.Entry<UUID, Entry>> it = lru.entrySet().iterator();
        while (bytes > maxBytes && it.hasNext()) {
            Map.Entry<UUID, Entry> oldest = it.next();
            if (oldest.getValue() == e) {
                break;   // never evict what was just added
            }
            it.remove();
            retire(oldest.getValue());
            evictions.increment();
        }
        return new Lease(e);
    }

    public synchronized void evict(UUID speaker) {
        Entry e = lru.remove(speaker);
        if (e != null) {
            retire(e);
        }
    }

    private void retire(Entry e) {
        bytes -= e.features.nativeBytes();
        e.evicted = true;
        if (e.leases == 0) {
            e.features.close();
        }
    }

    public synchronized long cachedBytes() {
        return bytes;
    }

    @PreDestroy
    synchronized void close() {
        for (Entry e : lru.values()) {
            retire(e);
        }
        lru.clear();
    }

    public static String sha256(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
