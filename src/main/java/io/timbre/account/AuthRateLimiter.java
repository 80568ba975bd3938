package io.timbre.account;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalLong;
import java.util.function.LongSupplier;

import io.timbre.config.TimbreConfig;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;

/**
 * Failed authentications per client address, as a token bucket: a client may fail {@code burst} times in a row,
 * then once per {@code refill}; until then it is refused (429) whatever key it sends, so a key cannot be
 * guessed at speed. Memory is bounded: the least recently seen clients are forgotten beyond {@code maxClients}.
 */
@Singleton
public class AuthRateLimiter {

    private final int burst;
    private final long refillNanos;
    private final LongSupplier clock;
    private final LinkedHashMap<String, Bucket> clients;

    private static final class Bucket {
        double tokens;
        long updated;

        Bucket(double tokens, long updated) {
            this.tokens = tokens;
            this.updated = updated;
        }
    }

    @Inject
    AuthRateLimiter(TimbreConfig config) {
        this(config.http().authFailureBurst(), config.http().authFailureRefill().toNanos(),
                config.http().authFailureClients(), System::nanoTime);
    }

    public AuthRateLimiter(int burst, long refillNanos, int maxClients, LongSupplier clock) {
        this.burst = burst;
        this.refillNanos = Math.max(1, refillNanos);
        this.clock = clock;
        this.clients = new LinkedHashMap<>(64, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, Bucket> eldest) {
                return size() > maxClients;
            }
        };
    }

    /** Seconds until {@code client} may try again, if it has spent its failures; empty if it may try now. */
    public synchronized OptionalLong retryAfterSeconds(String client) {
        Bucket b = clients.get(client);
        if (b == null) {
            return OptionalLong.empty();
        }
        refill(b);
        if (b.tokens >= 1) {
            return OptionalLong.empty();
        }
        long nanos = (long) Math.ceil((1 - b.tokens) * refillNanos);
        return OptionalLong.of(Math.max(1, (nanos + 999_999_999L) / 1_000_000_000L));
    }

    /** Records one failed authentication of {@code client}. */
    public synchronized void failed(String client) {
        Bucket b = clients.computeIfAbsent(client, c -> new Bucket(burst, clock.getAsLong()));
        refill(b);
        b.tokens = Math.max(0, b.tokens - 1);
    }

    /** Clients remembered now (bounded by the configured maximum). */
    public synchronized int clients() {
        return clients.size();
    }

    private void refill(Bucket b) {
        long now = clock.getAsLong();
        b.tokens = Math.min(burst, b.tokens + (now - b.updated) / (double) refillNanos);
        b.updated = now;
    }
}
