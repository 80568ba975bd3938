package io.timbre.api;

import java.net.ConnectException;
import java.sql.SQLException;
import java.sql.SQLNonTransientConnectionException;
import java.sql.SQLTransientConnectionException;
import java.util.IdentityHashMap;
import java.util.Locale;
import java.util.Set;
import java.util.Collections;

import org.hibernate.exception.JDBCConnectionException;

/** Tells a database outage (worth a 503 and a retry) from a bug (500). */
public final class DatabaseErrors {

    private DatabaseErrors() {
    }

    /**
     * True if {@code error} or one of its causes says the database cannot be reached: Hibernate's
     * {@link JDBCConnectionException}, a JDBC connection exception or SQLState class 08 (connection
     * exception), 57P01-57P03 (server shutting down or not accepting connections), Agroal's acquisition
     * timeout, or a refused TCP connection.
     */
    public static boolean isUnavailable(Throwable error) {
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Throwable t = error; t != null && seen.add(t); t = t.getCause()) {
            if (t instanceof JDBCConnectionException
                    || t instanceof SQLTransientConnectionException
                    || t instanceof SQLNonTransientConnectionException
                    || t instanceof ConnectException) {
                return true;
            }
            if (t instanceof SQLException sql) {
                String state = sql.getSQLState();
                if (state != null && (state.startsWith("08") || state.startsWith("57P0"))) {
                    return true;
                }
                String message = sql.getMessage();
                if (message != null && message.toLowerCase(Locale.ROOT).contains("acquisition timeout")) {
                    return true;
                }
            }
        }
        return false;
    }
}
