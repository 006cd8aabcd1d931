-- Build records: where a build's packages came from, and the files it made.
-- The release step finds the record that made some bytes by their sha256.
-- Timestamps are unix nanoseconds, UTC; record is the whole record as JSON.

CREATE TABLE build_records (
    id         TEXT NOT NULL PRIMARY KEY,
    project    TEXT NOT NULL,
    url        TEXT NOT NULL,
    ref        TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    tree       TEXT NOT NULL,
    change_no  INTEGER,
    patchset   INTEGER,
    format     TEXT NOT NULL,
    backend    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL,
    record     TEXT NOT NULL CHECK (json_valid(record))
) STRICT;

CREATE INDEX build_records_project_commit ON build_records (project, commit_sha);

-- package_* are NULL for files that are not binary packages.
CREATE TABLE build_outputs (
    record_id    TEXT NOT NULL REFERENCES build_records (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
    size         INTEGER NOT NULL CHECK (size >= 0),
    package_name TEXT,
    package_evr  TEXT,
    package_arch TEXT,
    PRIMARY KEY (record_id, name)
) STRICT;

CREATE INDEX build_outputs_sha256 ON build_outputs (sha256);
