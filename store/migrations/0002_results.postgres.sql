-- ResultsDB v2.0 (release-engineering/resultsdb): testcases, groups,
-- results, their groups and their data. Timestamps are unix nanoseconds,
-- UTC, truncated to the millisecond. An empty ref_url, note or description
-- is none. Data values are text; a key may have several values.
--
-- text_pattern_ops, as upstream: the b-tree then serves LIKE 'prefix%'
-- whatever the database's collation, and equality as well.

CREATE TABLE testcases (
    name    TEXT NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 255),
    ref_url TEXT NOT NULL DEFAULT ''
);

CREATE INDEX testcases_name_pattern ON testcases (name text_pattern_ops);

-- created_at orders the listing newest first, as upstream's id does.
CREATE TABLE groups (
    uuid        TEXT NOT NULL PRIMARY KEY CHECK (length(uuid) BETWEEN 1 AND 36),
    description TEXT NOT NULL DEFAULT '',
    ref_url     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE INDEX groups_created_at ON groups (created_at DESC, uuid DESC);

CREATE TABLE results (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    testcase_name TEXT NOT NULL REFERENCES testcases (name),
    submit_time   BIGINT NOT NULL,
    outcome       TEXT NOT NULL CHECK (length(outcome) BETWEEN 1 AND 32),
    note          TEXT NOT NULL DEFAULT '',
    ref_url       TEXT NOT NULL DEFAULT ''
);

-- The newest results of a testcase (results/latest), and all results
-- newest first (results).
CREATE INDEX results_testcase_time ON results (testcase_name text_pattern_ops, submit_time DESC, id DESC);
CREATE INDEX results_time ON results (submit_time DESC, id DESC);

CREATE TABLE results_groups (
    result_id  BIGINT NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    group_uuid TEXT NOT NULL REFERENCES groups (uuid),
    PRIMARY KEY (result_id, group_uuid)
);

CREATE INDEX results_groups_group ON results_groups (group_uuid, result_id);

-- id keeps the values of a key in the order they were given.
CREATE TABLE result_data (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    result_id BIGINT NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL
);

-- Both cover their queries: the data filters read result ids from the
-- first, the loading of a result's data reads the second alone.
CREATE INDEX result_data_key_value ON result_data (key text_pattern_ops, value text_pattern_ops, result_id);
CREATE INDEX result_data_result ON result_data (result_id, key, value);
