package io.timbre.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * native/META-INF/native-image/io.timbre/timbre (see native/README.md) names classes and resources of the
 * application and its jars: every class must exist, every resource pattern must match a resource on the
 * classpath, and every package initialised at run time must exist, so that a rename or a dependency upgrade
 * cannot silently leave the native configuration stale. No native image is built here.
 */
class NativeImageConfigTest {
    static final Path DIR = Path.of("native/META-INF/native-image/io.timbre/timbre");
    static final JsonMapper JSON = JsonMapper.builder().build();

    @Test
    void everyClassNamedForJniAndReflectionExists() throws IOException {
        for (String file : List.of("jni-config.json", "reflect-config.json")) {
            JsonNode config = JSON.readTree(Files.readString(DIR.resolve(file)));
            assertTrue(config.isArray() && !config.isEmpty(), file);
            for (JsonNode entry : config) {
                Class<?> c = load(entry.get("name").asString());
                for (JsonNode m : entry.path("methods")) {
                    List<Class<?>> params = new ArrayList<>();
                    m.path("parameterTypes").forEach(p -> params.add(type(p.asString())));
                    String name = m.get("name").asString();
                    try {
                        if (name.equals("<init>")) {
                            c.getDeclaredConstructor(params.toArray(Class[]::new));
                        } else {
                            c.getDeclaredMethod(name, params.toArray(Class[]::new));
                        }
                    } catch (NoSuchMethodException e) {
                        throw new AssertionError(file + ": " + c.getName() + "." + name + params + " does not exist", e);
                    }
                }
            }
        }
    }

    @Test
    void everyResourcePatternMatchesAResourceOnTheClasspath() throws IOException {
        JsonNode includes = JSON.readTree(Files.readString(DIR.resolve("resource-config.json"))).path("resources").path("includes");
        assertFalse(includes.isEmpty());
        // Patterns are a quoted literal (\Q...\E), optionally followed by ".*": the literal must be a resource
        // (a file, or a directory entry of a jar).
        Pattern quoted = Pattern.compile("\\\\Q(.+)\\\\E(\\.\\*)?");
        for (JsonNode include : includes) {
            String pattern = include.get("pattern").asString();
            Matcher m = quoted.matcher(pattern);
            assertTrue(m.matches(), "a quoted literal, optionally followed by .*: " + pattern);
            assertNotNull(getClass().getClassLoader().getResource(m.group(1)), "no resource " + m.group(1));
        }
    }

    @Test
    void runTimeInitialisedPackagesExist() throws IOException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(DIR.resolve("native-image.properties"))) {
            p.load(in);
        }
        Matcher m = Pattern.compile("--initialize-at-run-time=(\\S+)").matcher(p.getProperty("Args"));
        assertTrue(m.find());
        List<String> names = List.of(m.group(1).split(","));
        assertEquals(List.of("org.bytedeco", "ai.djl.huggingface.tokenizers.jni"), names);
        // one class of each, to prove the name is spelled as the jars spell it
        load("org.bytedeco.javacpp.Loader");
        load("ai.djl.huggingface.tokenizers.jni.TokenizersLibrary");
    }

    static Class<?> load(String name) {
        try {
            return Class.forName(name, false, NativeImageConfigTest.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            throw new AssertionError("no class " + name, e);
        }
    }

    static Class<?> type(String name) {
        return switch (name) {
            case "int" -> int.class;
            case "long" -> long.class;
            case "boolean" -> boolean.class;
            default -> load(name);
        };
    }
}
