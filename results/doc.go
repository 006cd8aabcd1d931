// Package results provides sluice's ResultsDB: the data layer of the
// ResultsDB v2.0 API (release-engineering/resultsdb, resultsdb/controllers/api_v2.py),
// over the SQL database of package store.
//
// A [Store] creates results inside its caller's transaction, so that a
// stage's state change and its outcome commit together, and creates or
// updates their testcase and groups on the fly, as upstream's POST
// /results does. It reads them back as upstream's GET endpoints do:
// [Store.Results] (/results, newest first, paged), [Store.Latest]
// (/results/latest, with _distinct_on), [Store.Result], [Store.Testcases],
// [Store.Testcase], [Store.Groups] and [Store.Group].
//
// Where this package differs from upstream, on purpose:
//
//   - In a :like pattern only '*' is a wildcard (any run of characters);
//     '%', '_' and every other character match themselves, and matching
//     is case-sensitive on both databases (upstream hands the pattern to
//     SQL LIKE, so '_' and '%' are wildcards too, and SQLite folds case).
//   - A result matched by several values of one data filter is returned
//     once (upstream's join returns it once per matching value).
//   - Latest returns one result per testcase (and per values of the
//     distinct-on keys), the one with the newest submit time and, among
//     results of the same millisecond, the highest id; upstream returns
//     every result that ties on the newest submit time.
//   - Submit times are kept to the millisecond; upstream keeps
//     microseconds of a time given as text.
//   - An empty RefURL, Note or Description is "none": upstream's null.
//
// # Latest
//
// results/latest is what Greenwave asks for every gating decision
// (item=X&type=koji_build&_distinct_on=scenario,...&testcases=...), so its
// query starts from the filter that selects the fewest results: item=X
// selects a hundred, type=koji_build most of a million, and neither
// database can tell them apart (SQLite has no statistics; PostgreSQL plans
// a prepared statement for the average value), so Latest first counts, in
// one query and up to a thousand, what each filter selects. The smallest
// gives its result ids from its index, on result_data (key, value,
// result_id) or results_groups, without reading the table; the other
// filters are checked on each of those results through the indexes that
// start with result_id; and only then are the few candidates ranked per
// testcase and distinct-on values with ROW_NUMBER(). The same SQL text
// runs on SQLite and PostgreSQL; only the :like operator differs (GLOB in
// SQLite, which is case-sensitive and can use the index for a prefix;
// LIKE ... ESCAPE in PostgreSQL, whose indexes use text_pattern_ops for
// the same reason).
package results
