-- The Gerrit side. Timestamps are unix nanoseconds, UTC.
--
-- events: every event from a source (Gerrit's stream, its webhooks, the
-- local source), journalled before it is acknowledged; the scheduler
-- marks it done in the transaction that applies it, so an event is
-- applied once even across a crash.
CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    type        TEXT NOT NULL,
    event       JSONB NOT NULL,
    received_at BIGINT NOT NULL,
    done_at     BIGINT NULL,
    -- what the event is about and when Gerrit made it: an event that a
    -- catch-up query made up again is known by them and not journalled
    -- twice.
    event_key   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX events_pending ON events (done_at, id);
CREATE INDEX events_key ON events (event_key, created_at);

-- The local source of the embedded default: changes proposed with
-- `sluice change propose` on local git repositories, kept as Gerrit
-- keeps them. Numbers count from 1.
CREATE TABLE local_changes (
    number     BIGINT PRIMARY KEY,
    project    TEXT NOT NULL,
    branch     TEXT NOT NULL,
    change_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    owner      TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('NEW', 'MERGED', 'ABANDONED')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project, branch, change_id)
);

CREATE TABLE local_patchsets (
    number     BIGINT NOT NULL REFERENCES local_changes (number),
    patchset   INTEGER NOT NULL CHECK (patchset >= 1),
    commit_sha TEXT NOT NULL,
    ref        TEXT NOT NULL,
    message    TEXT NOT NULL,
    parents    JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (number, patchset)
);

-- The current vote of each account on each label of a patchset.
CREATE TABLE local_votes (
    number   BIGINT NOT NULL,
    patchset INTEGER NOT NULL,
    label    TEXT NOT NULL,
    account  TEXT NOT NULL,
    value    INTEGER NOT NULL,
    voted_at BIGINT NOT NULL,
    PRIMARY KEY (number, patchset, label, account),
    FOREIGN KEY (number, patchset) REFERENCES local_patchsets (number, patchset)
);

-- Comments and reports (a review: message, tag, the votes it cast).
CREATE TABLE local_messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number     BIGINT NOT NULL,
    patchset   INTEGER NOT NULL,
    account    TEXT NOT NULL,
    tag        TEXT NOT NULL DEFAULT '',
    message    TEXT NOT NULL,
    labels     JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (number, patchset) REFERENCES local_patchsets (number, patchset)
);

CREATE INDEX local_messages_change ON local_messages (number, id);
