-- ResultsDB v2.0 (release-engineering/resultsdb): testcases, groups,
-- results, their groups and their data. Timestamps are unix nanoseconds,
-- UTC, truncated to the millisecond. An empty ref_url, note or description
-- is none. Data values are text; a key may have several values.

CREATE TABLE testcases (
    name    TEXT NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 255),
    ref_url TEXT NOT NULL DEFAULT ''
) STRICT;

-- created_at orders the listing newest first, as upstream's id does.
CREATE TABLE groups (
    uuid        TEXT NOT NULL PRIMARY KEY CHECK (length(uuid) BETWEEN 1 AND 36),
    description TEXT NOT NULL DEFAULT '',
    ref_url     TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX groups_created_at ON groups (created_at DESC, uuid DESC);

-- AUTOINCREMENT: an id is never reused, even after the newest row goes.
CREATE TABLE results (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    testcase_name TEXT NOT NULL REFERENCES testcases (name),
    submit_time   INTEGER NOT NULL,
    outcome       TEXT NOT NULL CHECK (length(outcome) BETWEEN 1 AND 32),
    note          TEXT NOT NULL DEFAULT '',
    ref_url       TEXT NOT NULL DEFAULT ''
) STRICT;

-- The newest results of a testcase (results/latest), and all results
-- newest first (results).
CREATE INDEX results_testcase_time ON results (testcase_name, submit_time DESC, id DESC);
CREATE INDEX results_time ON results (submit_time DESC, id DESC);

CREATE TABLE results_groups (
    result_id  INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    group_uuid TEXT NOT NULL REFERENCES groups (uuid),
    PRIMARY KEY (result_id, group_uuid)
) STRICT;

CREATE INDEX results_groups_group ON results_groups (group_uuid, result_id);

-- id keeps the values of a key in the order they were given.
CREATE TABLE result_data (
    id        INTEGER PRIMARY KEY,
    result_id INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL
) STRICT;

-- Both cover their queries: the data filters read result ids from the
-- first, the loading of a result's data reads the second alone.
CREATE INDEX result_data_key_value ON result_data (key, value, result_id);
CREATE INDEX result_data_result ON result_data (result_id, key, value);
