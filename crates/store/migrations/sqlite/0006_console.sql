-- The admin console (issue 6): acceptances of the site-wide terms of use, one per user and
-- version; the idle lifetime a session was started with (NULL: the configuration's).
CREATE TABLE terms_acceptances (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    accepted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, version)
);

ALTER TABLE sessions ADD COLUMN idle_ms BIGINT;
