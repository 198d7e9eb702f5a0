// Package schema owns hotrow's own tables and reads the metadata of the
// tables hot rules name.
//
// hotrow's tables live in one database (the meta schema, "hotrow" by
// default):
//
//   - ledger: one row per granted request, written in the same transaction
//     as the stock change. Its primary key (batch_id, seq) is the stable
//     idempotency key of the order feed.
//   - batches: one marker row per batch that wrote anything. A batch whose
//     COMMIT outcome is unknown is resolved by a locking read of its marker.
//   - checkpoints: one row per order feed consumer: the GTID set (and
//     file:position) up to which every event was acknowledged by its sinks.
//   - claims: one row per granted deduction merged from inside a client's
//     explicit transaction whose verdict is not known yet (written by the
//     batch, beside its ledger row; deleted once settled or cancelled):
//     its id (batch id ":" seq, the ledger row's key), owner (instance,
//     the client's backend connection id, the server's start time) and
//     what a cancel restores (table, key and stock columns, key, amount).
//   - verdicts: at most one row per claim, its primary key the claim id:
//     'confirm', written inside the client's own transaction (a copy of
//     the claim's ledger row, LedgerColumns, from which the order feed
//     emits the claim's event when it commits), or 'cancel', written by
//     the transaction that restores the stock. The key makes the two
//     mutually exclusive and a cancel idempotent.
//   - schema_version: the version of the tables above.
//
// LedgerRow is the ledger's row type; LedgerColumns and MarkerColumns are
// the column lists writers use, and the Max* constants the widths of the
// free-form columns, from which the DDL is built.
//
// Invariants:
//   - Ensure is idempotent: every statement is CREATE ... IF NOT EXISTS or
//     a migration guarded by the stored version, so any number of proxy
//     instances may run it concurrently at start.
//   - A missing privilege is reported by name (ErrPrivilege), never as a
//     bare server error.
//   - Values written by hotrow itself never make a ledger INSERT fail:
//     free-form columns are VARBINARY and writers clip to the Max* sizes.
//   - Table metadata is cached per table until Forget; it is only used to
//     choose an execution path, never to decide an outcome.
package schema
