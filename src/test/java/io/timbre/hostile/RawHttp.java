package io.timbre.hostile;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

import io.restassured.RestAssured;

/**
 * HTTP over a plain socket, for what RestAssured cannot do: send a body slowly, stop mid-body, or connect from
 * another loopback address (127.0.0.2 is another client to the server's per-IP limits).
 */
final class RawHttp {

    private RawHttp() {
    }

    /** A connection to the test server from {@code localAddress} (e.g. "127.0.0.2"). */
    static Socket connect(String localAddress, int readTimeoutMillis) throws IOException {
        Socket socket = new Socket();
        socket.bind(new InetSocketAddress(InetAddress.getByName(localAddress), 0));
        socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), RestAssured.port), 10_000);
        socket.setSoTimeout(readTimeoutMillis);
        return socket;
    }

    /** Sends {@code request} as is (it should say {@code Connection: close}) and returns the whole answer. */
    static Answer exchange(String localAddress, String request) throws IOException {
        try (Socket socket = connect(localAddress, 30_000)) {
            socket.getOutputStream().write(request.getBytes(StandardCharsets.UTF_8));
            socket.getOutputStream().flush();
            return Answer.parse(readAll(socket.getInputStream()));
        }
    }

    /** Everything until the server closes the connection (or the read timeout, which fails the test). */
    static String readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[8192];
        try {
            for (int n; (n = in.read(buffer)) >= 0; ) {
                out.write(buffer, 0, n);
            }
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the server neither answered nor closed the connection; got: "
                    + out.toString(StandardCharsets.UTF_8), e);
        } catch (IOException reset) {
            // A reset after the answer: what arrived is the answer.
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** A raw answer: status line, headers (lower-cased names) and body. */
    record Answer(String raw, int status, String headers, String body) {
        static Answer parse(String raw) {
            if (!raw.startsWith("HTTP/1.1 ")) {
                return new Answer(raw, -1, "", raw);
            }
            int end = raw.indexOf("\r\n\r\n");
            String head = end < 0 ? raw : raw.substring(0, end);
            String body = end < 0 ? "" : raw.substring(end + 4);
            return new Answer(raw, Integer.parseInt(raw.substring(9, 12)), head.toLowerCase(Locale.ROOT), body);
        }

        String header(String name) {
            String prefix = "\r\n" + name.toLowerCase(Locale.ROOT) + ": ";
            int at = headers.indexOf(prefix);
            if (at < 0) {
                return null;
            }
            int from = at + prefix.length();
            int to = headers.indexOf("\r\n", from);
            return headers.substring(from, to < 0 ? headers.length() : to).trim();
        }
    }
}
