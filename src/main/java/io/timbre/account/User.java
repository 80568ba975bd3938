package io.timbre.account;

import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Optional;
import java.util.UUID;

import io.quarkus.hibernate.orm.panache.PanacheEntityBase;
import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.GenerationType;
import jakarta.persistence.Id;
import jakarta.persistence.PrePersist;
import jakarta.persistence.Table;

/** A user of the API. Authenticates with an API key of which only the SHA-256 is stored. */
@Entity
@Table(name = "users")
public class User extends PanacheEntityBase {

    @Id
    @GeneratedValue(strategy = GenerationType.IDENTITY)
    public Long id;

    /** 1-64 characters of {@code [A-Za-z0-9._-]}, unique. */
    @Column(nullable = false, unique = true, length = 64)
    public String name;

    /** Lower-case hex SHA-256 of the API key; see {@link ApiKeys#hash(String)}. */
    @Column(name = "api_key_hash", nullable = false, unique = true)
    public String apiKeyHash;

    /** The speaker used when a request names none; null for zero-shot only. Cleared when it is deleted. */
    @Column(name = "current_speaker_id")
    public UUID currentSpeakerId;

    @Column(name = "created_at", nullable = false, updatable = false)
    public Instant createdAt;

    public static Optional<User> findByApiKeyHash(String apiKeyHash) {
        return find("apiKeyHash", apiKeyHash).firstResultOptional();
    }

    public static Optional<User> findByName(String name) {
        return find("name", name).firstResultOptional();
    }

    @PrePersist
    void onCreate() {
        if (createdAt == null) {
            // PostgreSQL keeps microseconds; truncate so the value returned now equals the one read later.
            createdAt = Instant.now().truncatedTo(ChronoUnit.MICROS);
        }
    }
}
