// Package binlog is hotrow's order feed: a Consumer reads the server's
// binlog (go-mysql's replication.BinlogSyncer) and delivers one event per
// stock deduction or restock to its sinks, whatever path the change took.
//
//	c, err := binlog.NewConsumer(cfg, log) // cfg from DefaultConfig, then Validate
//	err = c.Run(ctx)                       // until ctx ends, Close, or a fatal error
//
// # Events
//
//   - A merged batch's ledger rows (table ledger of the meta schema): one
//     event each, id = batch id + ":" + seq (schema.LedgerRow.ID), kind
//     order when delta < 0 (restock when > 0), quantity |delta|,
//     stock_after, batch, conn_id, committed_at = the row's created_at (µs).
//   - Any other change of a hot table's stock column (--hot-rule; pass-
//     through statements, client transactions, clients that bypass hotrow):
//     one event per UPDATE row whose stock went down (order) or up
//     (restock), quantity |after - before| computed exactly (DECIMAL
//     stock keeps its digits), id = the transaction's GTID (file:pos of
//     its start without GTIDs) + ":" + the row's position among the
//     transaction's row changes of hot tables, from 0.
//   - A merged batch's own change of the hot row is no event: in a
//     transaction with ledger rows of a table, that table's row changes
//     are skipped (the batch changes rows only through requests it
//     granted, each with its ledger row). So there is exactly one event
//     per deduction.
//   - With --include DB.TABLE, every row change of the table as a row
//     event: op c, u or d, before/after images by column name (from each
//     TABLE_MAP event, so ALTER TABLE mid-stream keeps them right), key =
//     the primary key's values joined by ",", id = GTID + ":" + position
//     among included row changes + ":row".
//
// committed_at is µs since the epoch: the ledger row's created_at for
// merged deductions, the commit event's time (whole seconds in the binlog)
// otherwise. source locates the transaction: gtid, file, pos of its first
// event, server_id. One line of the jsonl sink:
//
//	{"id":"web1-4711-9f2c01-lx3k2a-17:3","kind":"order","table":"shop.inv","key":"sku-42",
//	 "quantity":2,"stock_after":958,"batch":"web1-4711-9f2c01-lx3k2a-17","conn_id":812,
//	 "committed_at":1796215842123456,"source":{"gtid":"0-1-412","file":"binlog.000003","pos":88123,"server_id":1}}
//
// # Invariants
//
//   - Rows are buffered per transaction and emitted whole at its commit
//     (XID, or COMMIT/DDL query); a reconnection restarts at the last
//     transaction boundary read, so a transaction is never half emitted.
//     XA transactions (not used by hotrow; their outcome is logged apart
//     from their rows) are skipped with a warning.
//   - The stream is reconnected when the server sends nothing, not even a
//     heartbeat, for three Heartbeat periods while the consumer waits for
//     it (a stall on a full window does not count).
//   - At least once, stable ids: the checkpoint (table checkpoints, one
//     row per consumer Name: GTID set, file, pos, and as updated_at the
//     commit time of the transaction it ends with) is written only at
//     transaction boundaries every sink has acknowledged, at most every
//     CheckpointInterval and once more at shutdown. After a crash, only
//     events past the checkpoint are delivered again, with the same ids.
//   - Transactions without events move the checkpoint too (an idle or
//     unrelated workload does not hold it back), except those that only
//     write checkpoints, which would otherwise make a checkpoint write
//     per interval forever.
//   - The in-flight window (MaxInFlightEvents, MaxInFlightBytes) bounds
//     the events read but not acknowledged by every sink; when it is
//     full, reading stalls. One transaction is added whole, so memory is
//     bounded by the window plus the largest transaction (plus 256 parsed
//     binlog events queued in the syncer). Nothing is dropped.
//   - One goroutine per sink delivers batches (SinkBatch) in binlog order;
//     a failed Deliver is retried with the same messages, exponential
//     backoff with jitter (RetryMin..RetryMax), until ctx ends.
//   - Run checks binlog_format=ROW, binlog_row_image=FULL and
//     binlog_row_metadata=FULL (ErrServerSetting names the variable) and
//     calls schema.Ensure. Without a checkpoint it starts at the current
//     position (FromStart: the oldest binlog) and stores it at once.
//     MariaDB resumes by GTID, MySQL by GTID when gtid_mode=ON, otherwise
//     by file:pos.
//   - A lost connection or a server restart is retried forever; a purged
//     position (error 1236) ends Run with ErrPurged, which says what to do:
//     catch up from the ledger (query in the message), then run with
//     ResetCheckpoint (--reset-checkpoint).
//   - With LedgerRetention, ledger rows and batch markers older than it
//     and than every consumer's checkpoint are deleted in chunks of 500
//     rows with a one-second lock wait.
//   - Close cancels Run and waits for every goroutine; it is idempotent.
//
// The binlog user needs REPLICATION SLAVE, BINLOG MONITOR (MariaDB) or
// REPLICATION CLIENT (MySQL), SELECT, and schema.Privileges on the meta
// schema.
package binlog
