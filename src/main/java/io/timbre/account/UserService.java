package io.timbre.account;

import java.util.Optional;
import java.util.UUID;

import org.hibernate.exception.ConstraintViolationException;

import io.timbre.api.ApiProblem;
import io.timbre.speaker.Speaker;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.persistence.PersistenceException;
import jakarta.transaction.Transactional;

/** Users, their API keys and their current speaker. */
@ApplicationScoped
@Transactional
public class UserService {

    /** Who an API key belongs to. */
    public record Principal(long id, String name) {
    }

    /** A new user and its API key, which exists only here: the database keeps its hash. */
    public record CreatedUser(User user, String apiKey) {
    }

    public CreatedUser create(String name) {
        if (User.findByName(name).isPresent()) {
            throw duplicate(name);
        }
        String apiKey = ApiKeys.generate();
        User user = new User();
        user.name = name;
        user.apiKeyHash = ApiKeys.hash(apiKey);
        try {
            user.persistAndFlush();
        } catch (PersistenceException e) {
            if (isUniqueViolation(e)) {
                throw duplicate(name); // created concurrently since the check above
            }
            throw e;
        }
        return new CreatedUser(user, apiKey);
    }

    public Optional<Principal> authenticate(String apiKey) {
        return User.findByApiKeyHash(ApiKeys.hash(apiKey)).map(u -> new Principal(u.id, u.name));
    }

    public User get(long userId) {
        User user = User.findById(userId);
        if (user == null) {
            throw ApiProblem.unauthorized("The user of this API key no longer exists.");
        }
        return user;
    }

    /** Makes one of the user's own speakers the default for their requests. */
    public User setCurrentSpeaker(long userId, UUID speakerId) {
        User user = get(userId);
        Speaker speaker = Speaker.findOwned(speakerId, userId).orElseThrow(() -> new ApiProblem(404,
                "speaker-not-found", "Speaker not found",
                "You have no speaker with id " + speakerId + "; register one first or pick one of yours."));
        user.currentSpeakerId = speaker.id;
        try {
            // Checked here, not at commit: a DELETE of this speaker that committed since the lookup above
            // fails the foreign key, which is the same answer as if the lookup had not found it.
            user.flush();
        } catch (PersistenceException e) {
            if (isViolation(e, "23503")) {
                throw new ApiProblem(404, "speaker-not-found", "Speaker not found",
                        "Speaker " + speakerId + " was deleted while it was being selected; pick another one.");
            }
            throw e;
        }
        return user;
    }

    public User clearCurrentSpeaker(long userId) {
        User user = get(userId);
        user.currentSpeakerId = null;
        return user;
    }

    private static ApiProblem duplicate(String name) {
        return new ApiProblem(409, "user-exists", "User already exists",
                "A user named '" + name + "' already exists; choose another name.");
    }

    private static boolean isUniqueViolation(Throwable e) {
        return isViolation(e, "23505");
    }

    private static boolean isViolation(Throwable e, String sqlState) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof ConstraintViolationException c && sqlState.equals(c.getSQLState())) {
                return true;
            }
        }
        return false;
    }
}
