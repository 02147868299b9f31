-- Projects of labs, their members and groups, and workspaces with folder admins (PostgreSQL).
CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    lab_id BIGINT NOT NULL REFERENCES labs(id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- The directory holding the project's files: PARENT/NAME, where PARENT is the lab's project
    -- root or a custom file root set by a Site Admin.
    parent_dir TEXT NOT NULL,
    custom_root BIGINT NOT NULL DEFAULT 0,
    dir_name TEXT NOT NULL,
    lab_members_read BIGINT NOT NULL DEFAULT 1,
    -- active | archived | data_deleted
    status TEXT NOT NULL DEFAULT 'active',
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (lab_id, name_key)
);
CREATE UNIQUE INDEX projects_dir ON projects(parent_dir, dir_name);
CREATE INDEX projects_name ON projects(name_key, id);
-- The projects a lab's members may read, in name order (project listings).
CREATE INDEX projects_lab_read ON projects(lab_id, lab_members_read, name_key, id);

CREATE TABLE project_members (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id, project_id);

-- A project group gives its members a project role.
CREATE TABLE project_groups (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    role TEXT NOT NULL,
    UNIQUE (project_id, name_key)
);

CREATE TABLE project_group_members (
    group_id BIGINT NOT NULL REFERENCES project_groups(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX project_group_members_user ON project_group_members(user_id);

-- Workspaces (LabKey's subfolders) inside a project; a workspace may have a parent workspace.
CREATE TABLE workspaces (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    parent_id BIGINT REFERENCES workspaces(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    title TEXT NOT NULL,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name_key)
);

CREATE TABLE workspace_admins (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_admins_user ON workspace_admins(user_id);
