package io.timbre.account;

import io.timbre.api.ApiProblem;
import jakarta.enterprise.context.RequestScoped;

/**
 * Who sent the current request, as established by {@link ApiKeyFilter} for every {@code /v1} request:
 * either the admin (the key in {@code timbre.admin-key}) or a user.
 */
@RequestScoped
public class CurrentUser {

    private boolean admin;
    private Long userId;
    private String userName;

    void signInAdmin() {
        admin = true;
    }

    void signIn(long id, String name) {
        userId = id;
        userName = name;
    }

    public boolean isAdmin() {
        return admin;
    }

    public boolean isUser() {
        return userId != null;
    }

    /** Throws 403 unless the request carries the admin key. */
    public void requireAdmin() {
        if (!admin) {
            throw ApiProblem.forbidden("Only the admin key may do this; this request used a user's key.");
        }
    }

    /** The caller's user id; 403 for the admin key, which belongs to no user. */
    public long requireUserId() {
        if (userId == null) {
            throw ApiProblem.forbidden(
                    "The admin key belongs to no user; create a user with POST /v1/users and use its key.");
        }
        return userId;
    }

    /** The caller's name; 403 for the admin key. */
    public String requireUserName() {
        requireUserId();
        return userName;
    }

    /**
     * The caller's {@link User}, read in the current persistence context: inside a {@code @Transactional}
     * method it is managed, so changes to it are saved. 403 for the admin key; 401 if the user was deleted
     * after authentication.
     */
    public User requireUser() {
        User user = User.findById(requireUserId());
        if (user == null) {
            throw ApiProblem.unauthorized("The user of this API key no longer exists.");
        }
        return user;
    }
}
