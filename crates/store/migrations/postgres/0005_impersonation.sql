-- Impersonation (postgres): one row per impersonation a browser session started. The session keeps
-- its own user (the impersonator); while a row is open, requests of that session act as the
-- impersonated user or role, capped by the impersonator's own rights (crates/core authorize).
CREATE TABLE impersonations (
    id BIGSERIAL PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    impersonator_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- user | role | group
    kind TEXT NOT NULL,
    target_user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    target_role TEXT,
    -- For a group: the lab (site group) whose plain member the session acts as.
    target_lab_id BIGINT REFERENCES labs(id) ON DELETE CASCADE,
    -- site | scoped | break-glass (cryowarden_core::ImpersonationScope)
    scope TEXT NOT NULL,
    -- For a scoped impersonation: the project (and workspace) whose admin the impersonator is.
    project_id BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id BIGINT REFERENCES workspaces(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    -- stopped | logout | time-limit | ended (the impersonator or target is no longer active)
    end_reason TEXT
);
CREATE INDEX impersonations_session ON impersonations(session_id, ended_at);
