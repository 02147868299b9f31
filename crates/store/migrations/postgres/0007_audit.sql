-- The audit log UI (issue 6): indexes for every filter of the Audit Log page, and the anchors
-- that archiving leaves behind so that the live chain still verifies.

-- Each filter is an equality on its column followed by the page's order (seq DESC), so one index
-- range answers a page. `action` and `actor_id` have theirs since 0001.
CREATE INDEX audit_events_actor_name ON audit_events(actor, seq);
CREATE INDEX audit_events_impersonator ON audit_events(impersonator, seq);
CREATE INDEX audit_events_outcome ON audit_events(outcome, seq);
CREATE INDEX audit_events_target_id ON audit_events(target_id, seq);
CREATE INDEX audit_events_target ON audit_events(target, seq);
-- A time bound becomes a seq bound (`at` never decreases along the chain): the first and last
-- event of a time range, ties broken by seq.
DROP INDEX audit_events_at;
CREATE INDEX audit_events_at_seq ON audit_events(at, seq);

-- One row per archive: events first_seq..=seq were written to `file` (JSON lines, its SHA-256 in
-- file_sha256) and deleted; `hash` is the last archived event's hash, where the live chain (or the
-- next archive) continues; `prev_hash` is where this archive's chain starts.
CREATE TABLE audit_anchors (
    id BIGINT PRIMARY KEY,
    first_seq BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    events BIGINT NOT NULL,
    file TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_anchors_seq ON audit_anchors(seq);
