package io.timbre.web;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.net.URL;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.logging.Level;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.Keys;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.StaleElementReferenceException;
import org.openqa.selenium.TakesScreenshot;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.logging.LogEntry;
import org.openqa.selenium.logging.LogType;
import org.openqa.selenium.support.ui.ExpectedConditions;
import org.openqa.selenium.support.ui.WebDriverWait;

import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.timbre.account.TestUsers;

/**
 * The web page at {@code /} in a real browser: Debian's headless Chromium driven by Selenium, against the
 * service on its random test port. Skipped (not failed) where Chromium or its driver is not installed;
 * {@code .ci/run} installs both. The first test leaves a full-page screenshot in
 * {@code target/web-page.png} (the README's {@code docs/web-page.png} is a copy of it).
 */
@QuarkusTest
class WebPageTests {
    static final Path CHROMIUM = Path.of(System.getProperty("webtest.chromium", "/usr/bin/chromium"));
    static final Path CHROMEDRIVER = Path.of(System.getProperty("webtest.chromedriver", "/usr/bin/chromedriver"));
    static final Path PROMPT = Path.of("models/tiny/golden/tone.wav");
    static final String PROMPT_TEXT = "A steady vowel for the speaker prompt.";
    static final Path SCREENSHOT = Path.of("target/web-page.png");
    /** The tiny pack: at most 20 speech tokens per text token, 2 mel frames each, 480 samples per frame at 24 kHz. */
    static final double MAX_SECONDS_FOR_HI = 60 * 2 * 480 / 24000.0;

    static ChromeDriverService service;
    static WebDriver driver;
    static Path profile;

    @TestHTTPResource("/")
    URL page;

    WebDriverWait wait;

    static boolean browserInstalled() {
        return Files.isExecutable(CHROMIUM) && Files.isExecutable(CHROMEDRIVER);
    }

    @BeforeAll
    static void startBrowser() throws IOException {
        if (!browserInstalled()) {
            return;   // each test reports itself skipped
        }
        // Never let Selenium Manager look for (or download) a browser or driver: both are given here.
        System.setProperty("webdriver.chrome.driver", CHROMEDRIVER.toString());
        System.setProperty("SE_OFFLINE", "true");
        profile = Files.createTempDirectory("timbre-chromium-");
        ChromeOptions options = new ChromeOptions();
        options.setBinary(CHROMIUM.toFile());
        options.addArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                "--user-data-dir=" + profile, "--window-size=1280,1000", "--force-device-scale-factor=1",
                // a fake microphone (a beeping tone) that needs no permission prompt, for the recorder
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                // lets the test start playback without a user gesture
                "--autoplay-policy=no-user-gesture-required", "--mute-audio");
        options.setCapability("goog:loggingPrefs", Map.of("browser", "ALL"));
        service = new ChromeDriverService.Builder().usingDriverExecutable(CHROMEDRIVER.toFile())
                .usingAnyFreePort().build();
        driver = new ChromeDriver(service, options);
        driver.manage().timeouts().scriptTimeout(Duration.ofSeconds(30));
    }

    @AfterAll
    static void stopBrowser() throws IOException {
        if (driver != null) {
            driver.quit();
        }
        if (service != null) {
            service.stop();
        }
        if (profile != null) {
            try (Stream<Path> files = Files.walk(profile)) {
                files.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
            }
        }
    }

    @BeforeEach
    void openThePage() {
        Assumptions.assumeTrue(browserInstalled(), "Chromium is not installed (apt-get install chromium "
                + "chromium-driver; or -Dwebtest.chromium=... -Dwebtest.chromedriver=...): browser test skipped");
        wait = new WebDriverWait(driver, Duration.ofSeconds(60));
        wait.ignoring(StaleElementReferenceException.class);   // lists are re-rendered on each change
        driver.get(page.toString());
        js("sessionStorage.clear();");
        driver.navigate().refresh();
        wait.until(ExpectedConditions.attributeContains(By.id("service-status"), "class", "ready"));
        driver.manage().logs().get(LogType.BROWSER);   // each test sees only its own console messages
    }

    @Test
    void uploadMakeCurrentSynthesizeAndPlay() throws Exception {
        String user = TestUsers.uniqueName("web");
        String key = TestUsers.createUser(user);

        // the key, submitted with Enter; it is kept in sessionStorage, not in the page
        byId("api-key").sendKeys(key, Keys.ENTER);
        wait.until(ExpectedConditions.textToBePresentInElementLocated(By.id("whoami"), "Signed in as " + user));
        assertEquals(key, js("return sessionStorage.getItem('timbre.apiKey');"));
        assertEquals("", byId("api-key").getAttribute("value"), "the key is not left in the field");

        // register a voice from a file
        byId("reg-name").sendKeys("tone");
        byId("reg-audio-file").sendKeys(PROMPT.toAbsolutePath().toString());
        wait.until(ExpectedConditions.textToBePresentInElementLocated(By.id("reg-audio-status"), "tone.wav"));
        byId("reg-prompt-text").sendKeys(PROMPT_TEXT);
        byId("register-submit").click();
        WebElement row = wait.until(ExpectedConditions.presenceOfElementLocated(speakerRow("tone")));
        assertTrue(row.getText().contains(PROMPT_TEXT), row.getText());
        assertTrue(row.getText().contains("3.4 s recording"), row.getText());
        assertEquals(null, row.getAttribute("aria-current"), "not current yet");

        // make it current, from the keyboard
        row.findElement(By.cssSelector("button[data-action=select]")).sendKeys(Keys.ENTER);
        wait.until(ExpectedConditions.attributeToBe(speakerRow("tone"), "aria-current", "true"));
        assertTrue(driver.findElement(speakerRow("tone")).getText().contains("Current"));
        assertEquals("tone", byId("current-voice-name").getText());
        assertTrue(driver.findElement(speakerRow("tone")).findElements(By.cssSelector("button[data-action=select]")).isEmpty(),
                "the current voice has no 'Make current' button");

        // synthesize with the current voice
        byId("tts-text").sendKeys("Hi.");
        byId("speak-submit").click();
        wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("result")));
        String src = byId("result-audio").getAttribute("src");
        assertTrue(src.startsWith("blob:"), src);
        assertEquals(src, byId("result-download").getAttribute("href"), "the download link is the same audio");
        assertTrue(byId("result-download").getAttribute("download").endsWith(".wav"));

        // the browser decodes it: a plausible duration for "Hi." with the tiny pack
        double duration = ((Number) ((JavascriptExecutor) driver).executeAsyncScript("""
                const done = arguments[arguments.length - 1];
                const a = document.getElementById('result-audio');
                if (a.readyState >= 1 && isFinite(a.duration)) { done(a.duration); return; }
                a.addEventListener('loadedmetadata', () => done(a.duration), {once: true});
                a.addEventListener('error', () => done(-1), {once: true});
                """)).doubleValue();
        assertTrue(duration > 0.1 && duration <= MAX_SECONDS_FOR_HI + 0.01, "decoded duration " + duration);
        assertTrue(byId("result-summary").getText().startsWith(String.format(java.util.Locale.ROOT, "%.2f s", duration)),
                byId("result-summary").getText());
        Number decoded = (Number) ((JavascriptExecutor) driver).executeAsyncScript("""
                const done = arguments[arguments.length - 1];
                fetch(document.getElementById('result-audio').src).then(r => r.arrayBuffer())
                    .then(b => new OfflineAudioContext(1, 1, 24000).decodeAudioData(b))
                    .then(audio => done(audio.duration), e => done(-1));
                """);
        assertEquals(duration, decoded.doubleValue(), 0.01, "Web Audio decodes the same length");

        // it plays to the end
        Object played = ((JavascriptExecutor) driver).executeAsyncScript("""
                const done = arguments[arguments.length - 1];
                const a = document.getElementById('result-audio');
                a.addEventListener('ended', () => done(a.currentTime), {once: true});
                a.play().catch(e => done('play failed: ' + e));
                """);
        assertTrue(played instanceof Number, "played: " + played);
        assertEquals(duration, ((Number) played).doubleValue(), 0.05, "played to the end");

        // where the features came from, and the time of each stage
        assertEquals("memory", byId("result-source").getText());
        assertTrue(byId("result-source-help").getText().contains("cached in memory"));
        for (String stage : List.of("features", "llm", "flow", "vocoder", "total")) {
            String ms = driver.findElement(By.cssSelector("#timings-body tr[data-stage=" + stage + "] td.num")).getText();
            assertTrue(ms.matches("[0-9]+\\.[0-9]+"), stage + ": " + ms);
        }
        assertEquals(1, driver.findElements(By.cssSelector("#history-body tr")).size());

        // the waveform is drawn: as many samples as the audio, and pixels in the wave's colour
        assertEquals(Math.round(duration * 24000), Long.parseLong(byId("waveform").getAttribute("data-samples")));
        Number lit = (Number) js("""
                const c = document.getElementById('waveform');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4) { if (d[i + 2] > 200 && d[i] < 150) n++; }
                return n;""");
        assertTrue(lit.intValue() > 500, "waveform pixels: " + lit);

        // the same text zero-shot from an uploaded file: features computed for this request, which the
        // history shows next to the cached ones
        byId("mode-zero-shot").sendKeys(Keys.SPACE);
        wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("zero-shot-fields")));
        byId("zs-audio-file").sendKeys(PROMPT.toAbsolutePath().toString());
        byId("zs-prompt-text").sendKeys(PROMPT_TEXT);
        byId("speak-submit").click();
        wait.until(ExpectedConditions.textToBe(By.id("result-source"), "zero-shot"));
        List<WebElement> history = driver.findElements(By.cssSelector("#history-body tr"));
        assertEquals(2, history.size());
        assertTrue(history.get(0).getText().startsWith("Hi. zero-shot"), history.get(0).getText());
        assertTrue(history.get(1).getText().startsWith("Hi. memory"), history.get(1).getText());
        double zeroShotFeatures = Double.parseDouble(history.get(0).findElements(By.cssSelector("td")).get(2).getText());
        double cachedFeatures = Double.parseDouble(history.get(1).findElements(By.cssSelector("td")).get(2).getText());
        assertTrue(zeroShotFeatures > cachedFeatures, zeroShotFeatures + " ms vs " + cachedFeatures + " ms");

        // every control has a name a screen reader can say; nothing came from another origin; no console errors
        assertEquals(List.of(), js("""
                return [...document.querySelectorAll('input, textarea, button, select, audio[controls], canvas, a')]
                    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                        && !e.getAttribute('aria-labelledby') && !e.textContent.trim())
                    .map(e => e.outerHTML);"""));
        assertEquals(List.of(), js("""
                return performance.getEntriesByType('resource').map(e => e.name)
                    .filter(n => !n.startsWith(location.origin + '/') && !n.startsWith('blob:'));"""));
        assertEquals(List.of(), driver.manage().logs().get(LogType.BROWSER).getAll().stream()
                .filter(e -> e.getLevel().intValue() >= Level.WARNING.intValue()).map(LogEntry::getMessage).toList());

        screenshot();
    }

    @Test
    void tooShortAudioShowsTheProblemNextToTheAudioField() throws Exception {
        signIn(TestUsers.createUser(TestUsers.uniqueName("web-short")));
        Path shortWav = Files.createTempFile("one-second-", ".wav");
        try {
            Files.write(shortWav, sineWav(16000, 1.0));
            byId("reg-name").sendKeys("short");
            byId("reg-audio-file").sendKeys(shortWav.toAbsolutePath().toString());
            byId("reg-prompt-text").sendKeys(PROMPT_TEXT);
            byId("register-submit").click();

            WebElement error = wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("reg-audio-error")));
            wait.until(ExpectedConditions.textToBePresentInElement(error, "at least 3 s"));
            assertTrue(error.getText().contains("1.00 s"), error.getText());
            // next to the audio field: inside its fieldset, which is marked invalid, and nowhere else
            assertEquals("reg-audio", js("return document.getElementById('reg-audio-error').closest('fieldset').id;"));
            assertEquals("true", byId("reg-audio").getAttribute("aria-invalid"));
            assertEquals("true", byId("reg-audio-file").getAttribute("aria-invalid"));
            assertEquals("reg-audio-file", js("return document.activeElement.id;"), "focus moves to the field");
            assertFalse(byId("reg-name-error").isDisplayed());
            assertFalse(byId("reg-prompt-text-error").isDisplayed());
            assertFalse(byId("register-error").isDisplayed());
            assertTrue(driver.findElements(By.cssSelector("#speakers li")).isEmpty(), "nothing registered");
        } finally {
            Files.deleteIfExists(shortWav);
        }
    }

    @Test
    void aWrongKeyIsRefusedWithAMessageAtTheKeyField() {
        byId("api-key").sendKeys("tmb_not-a-real-key");
        byId("key-submit").click();
        WebElement error = wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("api-key-error")));
        assertTrue(error.getText().contains("not valid"), error.getText());
        assertFalse(byId("signed-in").isDisplayed(), "nothing else is offered without a valid key");
        assertEquals(null, js("return sessionStorage.getItem('timbre.apiKey');"), "a refused key is not kept");
        assertEquals("true", byId("api-key").getAttribute("aria-invalid"));
    }

    @Test
    void deleteAsksForConfirmation() {
        String key = TestUsers.createUser(TestUsers.uniqueName("web-delete"));
        String id = given().auth().oauth2(key).multiPart("name", "doomed").multiPart("promptText", PROMPT_TEXT)
                .multiPart("audio", PROMPT.toFile(), "audio/wav").post("/v1/speakers")
                .then().statusCode(201).extract().path("id");
        given().auth().oauth2(key).contentType(ContentType.JSON).body("{\"speakerId\":\"" + id + "\"}")
                .put("/v1/me/speaker").then().statusCode(200);
        signIn(key);
        WebElement row = wait.until(ExpectedConditions.presenceOfElementLocated(speakerRow("doomed")));
        assertEquals("true", row.getAttribute("aria-current"));

        row.findElement(By.cssSelector("button[data-action=delete]")).click();
        wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("confirm-delete")));
        assertTrue(byId("confirm-delete-text").getText().contains("doomed"));
        assertEquals("confirm-delete-cancel", js("return document.activeElement.id;"), "Cancel has the focus");
        byId("confirm-delete-cancel").click();
        wait.until(ExpectedConditions.invisibilityOfElementLocated(By.id("confirm-delete")));
        assertEquals(1, driver.findElements(speakerRow("doomed")).size(), "cancel keeps it");
        given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("id[0]", org.hamcrest.Matchers.equalTo(id));

        driver.findElement(speakerRow("doomed")).findElement(By.cssSelector("button[data-action=delete]")).click();
        wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("confirm-delete")));
        byId("confirm-delete-ok").click();
        wait.until(ExpectedConditions.numberOfElementsToBe(speakerRow("doomed"), 0));
        assertTrue(byId("speakers-empty").isDisplayed());
        assertTrue(byId("current-voice-name").getText().startsWith("none"));
        given().auth().oauth2(key).get("/v1/speakers").then().statusCode(200).body("$", empty());
        given().auth().oauth2(key).get("/v1/me").then().statusCode(200).body("currentSpeakerId", nullValue());
    }

    @Test
    void recordFromTheMicrophoneAndCloneZeroShot() {
        signIn(TestUsers.createUser(TestUsers.uniqueName("web-mic")));
        byId("mode-zero-shot").click();
        wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("zero-shot-fields")));
        WebElement picker = byId("zs-audio");
        picker.findElement(By.cssSelector("[data-role=record]")).click();
        // Chromium's fake microphone: record a little over 3 s, measured in captured samples
        wait.until(d -> {
            String status = byId("zs-audio-status").getText();
            return status.matches("Recording… ([0-9.]+) s.*")
                    && Double.parseDouble(status.replaceAll("Recording… ([0-9.]+) s.*", "$1")) >= 3.6;
        });
        assertEquals("zs-audio stop", js("const b = document.activeElement;"
                + " return b.closest('fieldset').id + ' ' + b.dataset.role;"), "Stop has the focus while recording");
        picker.findElement(By.cssSelector("[data-role=stop]")).sendKeys(Keys.ENTER);
        String recorded = wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("zs-audio-status"))).getText();
        assertTrue(recorded.matches("Recorded [0-9.]+ s \\([0-9]+ Hz, 16-bit mono WAV.*"), recorded);

        byId("zs-prompt-text").sendKeys("Beep beep beep.");
        byId("tts-text").sendKeys("Hi.");
        byId("speak-submit").click();
        wait.until(ExpectedConditions.textToBe(By.id("result-source"), "zero-shot"));
        assertTrue(byId("result-audio").getAttribute("src").startsWith("blob:"));
        String features = driver.findElement(By.cssSelector("#timings-body tr[data-stage=features] td.num")).getText();
        assertTrue(Double.parseDouble(features) > 0, "zero-shot computes features: " + features);
    }

    @Test
    void aServiceThatIsNotReadyIsExplained() {
        // The service under test is ready, so the page is shown a readiness probe that is not (503, as
        // SmallRye Health answers while the model pack loads).
        ChromeDriver chrome = (ChromeDriver) driver;
        Map<String, Object> script = chrome.executeCdpCommand("Page.addScriptToEvaluateOnNewDocument", Map.of("source", """
                const realFetch = window.fetch;
                window.fetch = (url, init) => String(url).includes('/q/health/ready')
                    ? Promise.resolve(new Response(JSON.stringify({status: 'DOWN', checks: [
                        {name: 'model-pack', status: 'DOWN', data: {error: 'loading'}},
                        {name: 'Database connections health check', status: 'UP'}]}),
                        {status: 503, headers: {'Content-Type': 'application/json'}}))
                    : realFetch(url, init);"""));
        try {
            driver.navigate().refresh();
            WebElement banner = wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("ready-banner")));
            assertTrue(banner.getText().startsWith("The service is not ready yet: model-pack (loading)."), banner.getText());
            assertEquals("alert", banner.getAttribute("role"));
            assertEquals("Not ready", byId("service-status").getText());
        } finally {
            chrome.executeCdpCommand("Page.removeScriptToEvaluateOnNewDocument", Map.of("identifier", script.get("identifier")));
        }
        driver.navigate().refresh();
        wait.until(ExpectedConditions.attributeContains(By.id("service-status"), "class", "ready"));
        assertFalse(byId("ready-banner").isDisplayed());
    }

    // ------------------------------------------------------------------------------------------ helpers

    void signIn(String key) {
        byId("api-key").sendKeys(key, Keys.ENTER);
        wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("signed-in")));
    }

    WebElement byId(String id) {
        return driver.findElement(By.id(id));
    }

    static By speakerRow(String name) {
        return By.cssSelector("#speakers li[data-speaker-name='" + name + "']");
    }

    static Object js(String script) {
        return ((JavascriptExecutor) driver).executeScript(script);
    }

    /** The whole page, in a viewport as tall as its content, into target/web-page.png. */
    static void screenshot() throws IOException {
        ChromeDriver chrome = (ChromeDriver) driver;
        js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);");
        long height = ((Number) js("return document.documentElement.scrollHeight;")).longValue();
        chrome.executeCdpCommand("Emulation.setDeviceMetricsOverride", Map.of("width", 1280,
                "height", (int) Math.min(height, 8000), "deviceScaleFactor", 1, "mobile", false));
        try {
            js("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));");
            byte[] png = ((TakesScreenshot) driver).getScreenshotAs(OutputType.BYTES);
            Files.createDirectories(SCREENSHOT.getParent());
            Files.write(SCREENSHOT, png);
        } finally {
            chrome.executeCdpCommand("Emulation.clearDeviceMetricsOverride", Map.of());
        }
    }

    /** A 16-bit mono PCM WAV of a 440 Hz tone. */
    static byte[] sineWav(int rate, double seconds) {
        int n = (int) Math.round(rate * seconds);
        ByteBuffer b = ByteBuffer.allocate(44 + n * 2).order(ByteOrder.LITTLE_ENDIAN);
        b.put("RIFF".getBytes()).putInt(36 + n * 2).put("WAVE".getBytes());
        b.put("fmt ".getBytes()).putInt(16).putShort((short) 1).putShort((short) 1).putInt(rate).putInt(rate * 2)
                .putShort((short) 2).putShort((short) 16);
        b.put("data".getBytes()).putInt(n * 2);
        for (int i = 0; i < n; i++) {
            b.putShort((short) Math.round(Math.sin(2 * Math.PI * 440 * i / rate) * 8000));
        }
        return b.array();
    }
}
