// Package admin is hotrow's admin port: a MySQL-protocol endpoint (on
// go-mysql's server.Handler, separate from the byte-exact client proxy)
// where a DBA reads and changes the hot rules and the merger's limits and
// sees live statistics, in ProxySQL's manner, and the Prometheus
// collector behind --metrics-listen.
//
//	rules := merger.NewRuleSet(nil)          // the proxy's Matcher
//	adm, err := admin.New(ctx, cfg, log, rules, m, proxyServer)
//	go adm.Serve(ln)
//	...
//	adm.Close()
//
// # Rules: memory, runtime, disk
//
// hot_rules (schema_name, table_name, key_column, stock_column, enabled)
// is the admin's editable copy ("memory"): SELECT, INSERT, REPLACE,
// UPDATE and DELETE work on it. LOAD HOT RULES TO RUNTIME puts its enabled
// rules in force (merger.RuleSet: the next statement is matched against
// them; requests already queued or in a batch finish as they were). SAVE
// HOT RULES TO DISK writes memory to the hot_rules table of the meta
// schema, LOAD HOT RULES FROM DISK reads it back. The table is created by
// this package (CREATE TABLE IF NOT EXISTS), seeded from the --hot-rule
// flags when empty, and polled: a change saved by another instance sharing
// the meta schema is loaded to memory and runtime within PollInterval.
// Every rule INSERTed or changed, and every rule loaded to runtime, is
// checked against the table's metadata (schema.Load): the table and
// columns exist, the key column alone is a unique key, the stock column
// is numeric.
//
// # Statements
//
// SELECT over one admin table (hot_rules, runtime_hot_rules,
// stats_hot_keys, stats_batches, stats_sessions) with WHERE (comparisons,
// AND, OR, NOT, IN, LIKE, BETWEEN, IS NULL), ORDER BY and LIMIT, evaluated
// in Go on a snapshot; SHOW HOTROW STATUS | VARIABLES; SET hotrow.name =
// value; PAUSE | RESUME MERGE FOR 'db.table' (statements on the table pass
// through, queued ones finish); KILL SESSION id. Anything else gets 1064
// naming what is supported. Statements are parsed with the TiDB parser,
// the admin commands with anchored regular expressions.
//
// # Observation and hot keys
//
// Observer (proxy.Observer) sees the text queries the proxy passes
// through: UPDATEs go to merger.HotKeys (stats_hot_candidates; with
// hotrow.auto_hot a candidate with a unique key and an integer stock
// column that hot_rules does not name is added to runtime and to
// memory), UPDATEs of ruled tables are counted by why they passed
// through (stats_not_merged), and, when hotrow.pass_through_digests is
// on, every statement is counted and timed by digest
// (stats_pass_through). Collector exposes the counters to Prometheus at
// scrape time.
//
// # Access
//
// One account (Config.User, Config.Password): application users cannot
// log in (1045, as a wrong password). Validate refuses a non-loopback
// address without a password.
package admin
