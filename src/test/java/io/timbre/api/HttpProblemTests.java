package io.timbre.api;

import static io.restassured.RestAssured.given;
import static io.timbre.account.TestUsers.ADMIN_KEY;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

import org.junit.jupiter.api.Test;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.RestAssured;
import io.restassured.http.ContentType;

/** Errors that happen before or around the resources still come back as problem+json. */
@QuarkusTest
class HttpProblemTests {

    private static final String PROBLEM_JSON = "application/problem+json";

    @Test
    void anUnknownRouteIsANotFoundProblem() {
        given().when().get("/no/such/thing")
                .then().statusCode(404)
                .contentType(PROBLEM_JSON)
                .body("status", equalTo(404))
                .body("type", equalTo("about:blank"))
                .body("instance", equalTo("/no/such/thing"))
                .body("detail", containsString("/no/such/thing"));

        given().auth().oauth2(ADMIN_KEY).when().get("/v1/nothing-here")
                .then().statusCode(404)
                .contentType(PROBLEM_JSON)
                .body("status", equalTo(404));
    }

    @Test
    void aWrongMethodIsAMethodNotAllowedProblem() {
        given().auth().oauth2(ADMIN_KEY).when().get("/v1/users")
                .then().statusCode(405)
                .contentType(PROBLEM_JSON)
                .body("status", equalTo(405))
                .body("detail", containsString("GET"));
        given().when().options("/v1/users")
                .then().statusCode(200)
                .header("Allow", containsString("POST"));
    }

    @Test
    void aWrongContentTypeIsAnUnsupportedMediaTypeProblem() {
        given().auth().oauth2(ADMIN_KEY).contentType(ContentType.TEXT).body("name=x")
                .when().post("/v1/users")
                .then().statusCode(415)
                .contentType(PROBLEM_JSON)
                .body("status", equalTo(415))
                .body("detail", containsString("application/json"));
    }

    @Test
    void aBodyOverTheLimitIsAContentTooLargeProblem() throws Exception {
        // Announce a body over the 20M limit and, like curl does for large bodies, wait for the server's
        // go-ahead before sending it: the server must answer 413 without reading the body.
        // (JDK 17's HttpClient hangs on a non-100 answer to Expect, hence the raw socket.)
        String request = "POST /v1/users HTTP/1.1\r\n"
                + "Host: localhost\r\n"
                + "Authorization: Bearer " + ADMIN_KEY + "\r\n"
                + "Content-Type: application/json\r\n"
                + "Content-Length: " + (20 * 1024 * 1024 + 1) + "\r\n"
                + "Expect: 100-continue\r\n\r\n";
        String response;
        try (Socket socket = new Socket("localhost", RestAssured.port)) {
            socket.setSoTimeout(10_000);
            socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().flush();
            response = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }

        assertTrue(response.startsWith("HTTP/1.1 413"), response);
        assertTrue(response.toLowerCase(Locale.ROOT).contains("content-type: " + PROBLEM_JSON), response);
        assertTrue(response.contains("\"status\":413"), response);
        assertTrue(response.contains("the limit is 20971520 bytes"), response);
    }

    @Test
    void healthAndOpenApiNeedNoKey() {
        given().when().get("/q/health/ready")
                .then().statusCode(200)
                .body("status", equalTo("UP"));
        given().when().get("/q/health/live")
                .then().statusCode(200)
                .body("status", equalTo("UP"));
        given().when().get("/q/openapi?format=json")
                .then().statusCode(200)
                .body("paths.'/v1/users'.post.summary", containsString("Create a user"));
    }
}
