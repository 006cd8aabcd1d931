-- The scheduler's state, saved after every event it handles, in the
-- transaction that marks the journalled event done and queues the
-- reports the event made. Timestamps are unix nanoseconds, UTC.
CREATE TABLE pipeline_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    state      TEXT NOT NULL CHECK (json_valid(state)),
    events     INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Reports (votes, messages) waiting to be posted, in order; posting_at is
-- set before a post starts, sent_at once the source took it: a report with
-- posting_at and no sent_at may have been posted by a process that died.
CREATE TABLE pipeline_reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    report     TEXT NOT NULL CHECK (json_valid(report)),
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    posting_at INTEGER NULL,
    sent_at    INTEGER NULL
) STRICT;

CREATE INDEX pipeline_reports_unsent ON pipeline_reports (sent_at, id);

-- How each buildset ended.
CREATE TABLE buildsets (
    uuid       TEXT NOT NULL PRIMARY KEY,
    pipeline   TEXT NOT NULL,
    project    TEXT NOT NULL,
    change_no  INTEGER,
    patchset   INTEGER,
    changes    TEXT NOT NULL CHECK (json_valid(changes)),
    result     TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    ended_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX buildsets_change ON buildsets (project, change_no, patchset);
