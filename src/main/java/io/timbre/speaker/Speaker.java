package io.timbre.speaker;

import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Optional;
import java.util.UUID;

import io.quarkus.hibernate.orm.panache.PanacheEntityBase;
import io.timbre.account.User;
import jakarta.persistence.Basic;
import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.FetchType;
import jakarta.persistence.Id;
import jakarta.persistence.JoinColumn;
import jakarta.persistence.ManyToOne;
import jakarta.persistence.PrePersist;
import jakarta.persistence.Table;

/**
 * A voice registered by a user from a reference recording. The prompt audio is the source of truth; the
 * feature file is derived from it by a model pack and can be recomputed at any time.
 */
@Entity
@Table(name = "speakers")
public class Speaker extends PanacheEntityBase {

    /** Assigned on persist when null; set it yourself if you need it earlier (e.g. for a file name). */
    @Id
    public UUID id;

    @ManyToOne(fetch = FetchType.LAZY, optional = false)
    @JoinColumn(name = "owner_id", nullable = false, updatable = false)
    public User owner;

    /** Unique per owner. */
    @Column(nullable = false)
    public String name;

    /** Transcript of the prompt audio. */
    @Column(name = "prompt_text", nullable = false)
    public String promptText;

    /**
     * Normalised prompt: mono float32 little-endian PCM at {@link #promptSampleRate} (16 kHz), at most 30 s
     * (the database checks this). Loaded only when read.
     */
    @Basic(fetch = FetchType.LAZY)
    @Column(name = "prompt_audio", nullable = false)
    public byte[] promptAudio;

    /** Size of {@link #promptAudio} without loading it (0: imported features, no recording to rebuild from). */
    @org.hibernate.annotations.Formula("octet_length(prompt_audio)")
    public int promptAudioBytes;

    @Column(name = "prompt_sample_rate", nullable = false)
    public int promptSampleRate;

    @Column(name = "feature_path")
    public String featurePath;

    /** Lower-case hex SHA-256 of the feature file. */
    @Column(name = "feature_sha256")
    public String featureSha256;

    @Column(name = "feature_bytes")
    public Long featureBytes;

    /** The model pack that computed the features; a different pack means re-extract. */
    @Column(name = "pack_name")
    public String packName;

    @Column(name = "pack_version")
    public String packVersion;

    @Column(name = "created_at", nullable = false, updatable = false)
    public Instant createdAt;

    /** The speaker with this id if it belongs to {@code owner}; empty if it does not exist or is someone else's. */
    public static Optional<Speaker> findOwned(UUID id, User owner) {
        return findOwned(id, owner.id);
    }

    /** As {@link #findOwned(UUID, User)}, by the owner's id. */
    public static Optional<Speaker> findOwned(UUID id, long ownerId) {
        if (id == null) {
            return Optional.empty();
        }
        return find("id = ?1 and owner.id = ?2", id, ownerId).firstResultOptional();
    }

    @PrePersist
    void onCreate() {
        if (id == null) {
            id = UUID.randomUUID();
        }
        if (createdAt == null) {
            createdAt = Instant.now().truncatedTo(ChronoUnit.MICROS);
        }
    }
}
