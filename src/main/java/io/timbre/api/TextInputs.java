package io.timbre.api;

/**
 * Checks shared by every text a client sends (names, transcripts, text to speak, voice names). PostgreSQL
 * cannot store U+0000 in text and native tokenizers end strings there, so a NUL character is refused up
 * front with a 400 instead of failing deep inside (a database error was a 500).
 */
public final class TextInputs {

    private TextInputs() {
    }

    /** Returns {@code value} unchanged; 400 problem naming the field if it contains a NUL character. */
    public static String requireNoNul(String field, String value) {
        int at = value == null ? -1 : value.indexOf('\0');
        if (at >= 0) {
            throw new ApiProblem(400, "nul-character", "NUL character in text", "'" + field
                    + "' contains a NUL character (U+0000) at position " + at + "; remove it and send the text again.");
        }
        return value;
    }
}
