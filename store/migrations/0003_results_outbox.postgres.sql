-- The outbox of results bound for an external ResultsDB: a row is added
-- in the transaction that creates the result, and marked delivered once
-- the external side holds it. sluice_id is the result's SluiceIDKey data
-- value, by which the sender asks whether an earlier post landed.
-- Timestamps are unix nanoseconds, UTC.
CREATE TABLE results_outbox (
    result_id       BIGINT NOT NULL PRIMARY KEY REFERENCES results (id) ON DELETE CASCADE,
    sluice_id       TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    BIGINT NULL
);

-- The sender's question: which undelivered rows are due.
CREATE INDEX results_outbox_due ON results_outbox (delivered_at, next_attempt_at);
