-- Users authenticate with an API key; only its SHA-256 (lower-case hex) is stored.
CREATE TABLE users (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               VARCHAR(64) NOT NULL UNIQUE,
    api_key_hash       TEXT        NOT NULL UNIQUE CHECK (api_key_hash ~ '^[0-9a-f]{64}$'),
    current_speaker_id UUID,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A speaker is a voice registered from a reference recording. The prompt audio is kept so that the
-- features (derived data in feature_path) can always be re-extracted, e.g. for another model pack.
CREATE TABLE speakers (
    id                 UUID        PRIMARY KEY,
    owner_id           BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT        NOT NULL,
    prompt_text        TEXT        NOT NULL,
    -- normalised prompt: mono float32 little-endian PCM at prompt_sample_rate (16 kHz), at most 30 s
    prompt_audio       BYTEA       NOT NULL,
    prompt_sample_rate INTEGER     NOT NULL,
    feature_path       TEXT,
    feature_sha256     TEXT,
    feature_bytes      BIGINT,
    pack_name          TEXT,
    pack_version       TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT speakers_owner_name_key UNIQUE (owner_id, name),
    CONSTRAINT speakers_prompt_sample_rate_check CHECK (prompt_sample_rate > 0),
    CONSTRAINT speakers_prompt_audio_check CHECK (
        octet_length(prompt_audio) % 4 = 0
        AND octet_length(prompt_audio) <= prompt_sample_rate::BIGINT * 4 * 30)
);

-- speakers references users, so this reference is added once both tables exist.
ALTER TABLE users
    ADD CONSTRAINT users_current_speaker_fk
    FOREIGN KEY (current_speaker_id) REFERENCES speakers (id) ON DELETE SET NULL;
