package io.timbre.account;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.HexFormat;

/** API keys: {@code tmb_} + 32 random bytes in URL-safe base64; stored only as SHA-256. */
public final class ApiKeys {

    public static final String PREFIX = "tmb_";
    private static final SecureRandom RANDOM = new SecureRandom();

    private ApiKeys() {
    }

    /** A new random key (43 base64url characters after the prefix). */
    public static String generate() {
        byte[] bytes = new byte[32];
        RANDOM.nextBytes(bytes);
        return PREFIX + Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    /** Lower-case hex SHA-256 of the key's UTF-8 bytes, as stored in {@code users.api_key_hash}. */
    public static String hash(String key) {
        return HexFormat.of().formatHex(sha256(key));
    }

    /** Compares two secrets in time that does not depend on where they differ. */
    public static boolean secretEquals(String a, String b) {
        return MessageDigest.isEqual(sha256(a), sha256(b));
    }

    private static byte[] sha256(String text) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JVM", e);
        }
    }
}
