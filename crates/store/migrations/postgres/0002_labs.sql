-- Labs (site groups): members with a lab role, storage roots, the Unix run-as account (PostgreSQL).
CREATE TABLE labs (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    import_policy TEXT NOT NULL DEFAULT 'all_members',
    unix_user TEXT,
    unix_group TEXT,
    uid BIGINT,
    gid BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE lab_members (
    lab_id BIGINT NOT NULL REFERENCES labs(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (lab_id, user_id)
);
CREATE INDEX lab_members_user ON lab_members(user_id);

CREATE TABLE lab_roots (
    id BIGSERIAL PRIMARY KEY,
    lab_id BIGINT NOT NULL REFERENCES labs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE
);
CREATE INDEX lab_roots_lab ON lab_roots(lab_id);
-- At most one project root per lab.
CREATE UNIQUE INDEX lab_roots_one_project ON lab_roots(lab_id) WHERE kind = 'project';
