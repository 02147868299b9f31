-- Lanes and their targets, lane restrictions, command templates, jobs and imported exposures (PostgreSQL).
CREATE TABLE lanes (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- node | cluster
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A node (CPU/GPU/RAM slots) or a cluster (CryoSPARC's cluster_info.json and cluster_script.sh).
CREATE TABLE targets (
    id BIGSERIAL PRIMARY KEY,
    lane_id BIGINT NOT NULL REFERENCES lanes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    hostname TEXT NOT NULL DEFAULT '',
    -- node: {"cpus": n, "gpus": [{"id", "name", "mem"}], "ram_gb": n}; cluster: cluster_info.json
    config TEXT NOT NULL,
    script TEXT NOT NULL DEFAULT '',
    -- {"name": "value"}: the target's custom variables
    custom_vars TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX targets_lane ON targets(lane_id);

-- Lanes a user may not queue to. Absent rows mean allowed: a new user gets every lane and a new
-- lane goes to every user.
CREATE TABLE lane_denials (
    lane_id BIGINT NOT NULL REFERENCES lanes(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (lane_id, user_id)
);
CREATE INDEX lane_denials_user ON lane_denials(user_id);

-- Admin-registered commands (e.g. a MotionCor2 wrapper): a minijinja template over typed parameters.
CREATE TABLE command_templates (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    -- [{"name", "type": "string|int|float|bool|path", "required", "default"}]
    params TEXT NOT NULL,
    -- argv templates, one per element, rendered with the parameters as data
    argv TEXT NOT NULL,
    num_cpu BIGINT NOT NULL,
    num_gpu BIGINT NOT NULL,
    ram_gb BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    workspace_id BIGINT REFERENCES workspaces(id) ON DELETE SET NULL,
    -- J1, J2... within the project
    number BIGINT NOT NULL,
    job_type TEXT NOT NULL,
    title TEXT NOT NULL,
    params TEXT NOT NULL,
    creator_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    requested_priority BIGINT,
    priority BIGINT NOT NULL DEFAULT 0,
    num_cpu BIGINT NOT NULL,
    num_gpu BIGINT NOT NULL,
    ram_gb BIGINT NOT NULL,
    lane_id BIGINT REFERENCES lanes(id) ON DELETE SET NULL,
    target_id BIGINT REFERENCES targets(id) ON DELETE SET NULL,
    -- JSON list of GPU ids asked for on the target
    gpu_ids TEXT,
    custom_vars TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    queue_state TEXT,
    queue_message TEXT,
    -- order of entry into the queue (FIFO within a priority)
    queued_seq BIGINT,
    -- the GPUs and target the job was launched on
    assigned TEXT,
    cluster_job_id TEXT,
    pid BIGINT,
    failure TEXT,
    created_at BIGINT NOT NULL,
    queued_at BIGINT,
    launched_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, number)
);
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_queue ON jobs(lane_id, priority DESC, queued_seq) WHERE status = 'queued';

CREATE TABLE exposures (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    frames BIGINT NOT NULL,
    mode TEXT,
    pixel_size_a DOUBLE PRECISION,
    created_at BIGINT NOT NULL
);
CREATE INDEX exposures_job ON exposures(job_id);
CREATE INDEX exposures_project ON exposures(project_id);
