-- The scheduler's state, saved after every event it handles, in the
-- transaction that marks the journalled event done and queues the
-- reports the event made. Timestamps are unix nanoseconds, UTC.
CREATE TABLE pipeline_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    state      TEXT NOT NULL,
    events     BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Reports (votes, messages) waiting to be posted, in order; posting_at is
-- set before a post starts, sent_at once the source took it: a report with
-- posting_at and no sent_at may have been posted by a process that died.
CREATE TABLE pipeline_reports (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report     JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    posting_at BIGINT NULL,
    sent_at    BIGINT NULL
);

CREATE INDEX pipeline_reports_unsent ON pipeline_reports (sent_at, id);

-- How each buildset ended.
CREATE TABLE buildsets (
    uuid       TEXT NOT NULL PRIMARY KEY,
    pipeline   TEXT NOT NULL,
    project    TEXT NOT NULL,
    change_no  BIGINT,
    patchset   INTEGER,
    changes    JSONB NOT NULL,
    result     TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    ended_at   BIGINT NOT NULL
);

CREATE INDEX buildsets_change ON buildsets (project, change_no, patchset);
