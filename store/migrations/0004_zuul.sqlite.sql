-- The Gerrit side. Timestamps are unix nanoseconds, UTC.
--
-- events: every event from a source (Gerrit's stream, its webhooks, the
-- local source), journalled before it is acknowledged; the scheduler
-- marks it done in the transaction that applies it, so an event is
-- applied once even across a crash.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    type        TEXT NOT NULL,
    event       TEXT NOT NULL CHECK (json_valid(event)),
    received_at INTEGER NOT NULL,
    done_at     INTEGER NULL,
    -- what the event is about and when Gerrit made it: an event that a
    -- catch-up query made up again is known by them and not journalled
    -- twice.
    event_key   TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX events_pending ON events (done_at, id);
CREATE INDEX events_key ON events (event_key, created_at);

-- The local source of the embedded default: changes proposed with
-- `sluice change propose` on local git repositories, kept as Gerrit
-- keeps them. Numbers count from 1.
CREATE TABLE local_changes (
    number     INTEGER PRIMARY KEY,
    project    TEXT NOT NULL,
    branch     TEXT NOT NULL,
    change_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    owner      TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('NEW', 'MERGED', 'ABANDONED')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (project, branch, change_id)
) STRICT;

CREATE TABLE local_patchsets (
    number     INTEGER NOT NULL REFERENCES local_changes (number),
    patchset   INTEGER NOT NULL CHECK (patchset >= 1),
    commit_sha TEXT NOT NULL,
    ref        TEXT NOT NULL,
    message    TEXT NOT NULL,
    parents    TEXT NOT NULL CHECK (json_valid(parents)),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (number, patchset)
) STRICT;

-- The current vote of each account on each label of a patchset.
CREATE TABLE local_votes (
    number   INTEGER NOT NULL,
    patchset INTEGER NOT NULL,
    label    TEXT NOT NULL,
    account  TEXT NOT NULL,
    value    INTEGER NOT NULL,
    voted_at INTEGER NOT NULL,
    PRIMARY KEY (number, patchset, label, account),
    FOREIGN KEY (number, patchset) REFERENCES local_patchsets (number, patchset)
) STRICT;

-- Comments and reports (a review: message, tag, the votes it cast).
CREATE TABLE local_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    number     INTEGER NOT NULL,
    patchset   INTEGER NOT NULL,
    account    TEXT NOT NULL,
    tag        TEXT NOT NULL DEFAULT '',
    message    TEXT NOT NULL,
    labels     TEXT NOT NULL CHECK (json_valid(labels)),
    created_at INTEGER NOT NULL,
    FOREIGN KEY (number, patchset) REFERENCES local_patchsets (number, patchset)
) STRICT;

CREATE INDEX local_messages_change ON local_messages (number, id);
