package binlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/hotrow/hotrow/internal/ctxsleep"
)

// stream reads the binlog from a transaction boundary, turns each
// transaction into messages at its commit and adds them to the window.
// A lost connection is reopened from the last boundary read, so a
// transaction is never half emitted.
type stream struct {
	cfg    Config
	log    *slog.Logger
	srv    server
	tables *tables
	w      *window

	// pos is the last transaction boundary read.
	pos Position
	// gset is the GTID set at pos on MariaDB (nil on MySQL, where the
	// syncer tracks it).
	gset *gomysql.MariadbGTIDSet
	file string // current binlog file

	trx        txn
	began      bool // trx holds a transaction's start
	inTrx      bool // a multi-statement transaction: only COMMIT/XID ends it
	mariaGTID  gomysql.MariadbGTID
	read       atomic.Uint64 // messages emitted, for the stats
	lastCommit atomic.Int64  // commit time (µs) of the last transaction read
}

func newStream(cfg Config, log *slog.Logger, srv server, w *window, start Position) (*stream, error) {
	s := &stream{cfg: cfg, log: log, srv: srv, tables: newTables(cfg), w: w, pos: start, file: start.File}
	if srv.mariadb {
		set, err := gomysql.ParseMariadbGTIDSet(start.GTID)
		if err != nil {
			return nil, fmt.Errorf("binlog: checkpoint gtid %q: %w", start.GTID, err)
		}
		s.gset = set.(*gomysql.MariadbGTIDSet)
	}
	return s, nil
}

// run reads until ctx ends or a fatal error: the server refused the
// user, lost the position, or sent what cannot be decoded.
func (s *stream) run(ctx context.Context) error {
	backoff := s.cfg.RetryMin
	for {
		progressed, err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fatal := s.fatal(err); fatal != nil {
			return fatal
		}
		if progressed {
			backoff = s.cfg.RetryMin
		}
		s.log.Warn("binlog stream lost, reconnecting", "err", err.Error(), "gtid", s.pos.GTID,
			"file", s.pos.File, "pos", s.pos.Pos, "retry_in", backoff)
		if !ctxsleep.Sleep(ctx, jittered(backoff)) {
			return nil
		}
		backoff = min(2*backoff, s.cfg.RetryMax)
	}
}

// fatal returns the error Run should end with, or nil when err is worth
// a reconnection (network, server restart).
func (s *stream) fatal(err error) error {
	var de decodeError
	if errors.As(err, &de) {
		return de.err
	}
	code := 0
	var gm *gomysql.MyError
	var my *mysql.MySQLError
	switch {
	case errors.As(err, &gm):
		code = int(gm.Code)
	case errors.As(err, &my):
		code = int(my.Number)
	}
	switch code {
	case 0:
		return nil
	case 1236:
		return purgedError(s.cfg.MetaSchema, s.cfg.Name, s.pos, err)
	case 1040, 1053, 1077, 1152, 1158, 1159, 1160, 1161, 2013: // too many connections, shutdown, aborted
		return nil
	}
	return privilegeError("binlog stream", err)
}

// decodeError marks an error of the consumer's own decoding: fatal.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }

// session opens one binlog connection from s.pos and reads from it.
// progressed reports whether it read any transaction.
func (s *stream) session(ctx context.Context) (progressed bool, err error) {
	dsn, _ := mysql.ParseDSN(s.cfg.SourceDSN)
	host, portText, err := net.SplitHostPort(dsn.Addr)
	if err != nil {
		return false, decodeError{fmt.Errorf("binlog: source address %q: %w", dsn.Addr, err)}
	}
	port, _ := strconv.Atoi(portText)
	tlsConfig := dsn.TLS // the DSN's tls=true, skip-verify or a registered name
	if dsn.AllowFallbackToPlaintext {
		tlsConfig = nil // tls=preferred: go-mysql cannot fall back, so plain
	}
	flavor := gomysql.MySQLFlavor
	if s.srv.mariadb {
		flavor = gomysql.MariaDBFlavor
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:                s.cfg.serverID(),
		Flavor:                  flavor,
		Host:                    host,
		Port:                    uint16(port),
		User:                    dsn.User,
		Password:                dsn.Passwd,
		Charset:                 "utf8mb4",
		TLSConfig:               tlsConfig,
		ParseTime:               true,
		TimestampStringLocation: time.UTC,
		UseDecimal:              true,
		HeartbeatPeriod:         s.cfg.Heartbeat,
		DisableRetrySync:        true,
		// Parsed events waiting for the reader: few, so a stalled window
		// holds little more memory than its own bound.
		EventCacheCount:     256,
		Logger:              slog.New(quietHandler{s.log.Handler()}).With("component", "go-mysql"),
		RowsEventDecodeFunc: s.decodeRows,
	})
	defer syncer.Close()
	var st *replication.BinlogStreamer
	if gtid := s.pos.GTID; gtid != "" {
		var set gomysql.GTIDSet
		if s.srv.mariadb {
			set, err = gomysql.ParseMariadbGTIDSet(gtid)
		} else {
			set, err = gomysql.ParseMysqlGTIDSet(gtid)
		}
		if err != nil {
			return false, decodeError{fmt.Errorf("binlog: gtid %q: %w", gtid, err)}
		}
		st, err = syncer.StartSyncGTID(set)
	} else {
		st, err = syncer.StartSync(gomysql.Position{Name: s.pos.File, Pos: s.pos.Pos})
	}
	if err != nil {
		return false, err
	}
	s.began, s.inTrx = false, false
	for {
		e, err := s.nextEvent(ctx, st)
		if err != nil {
			return progressed, err
		}
		done, err := s.handle(ctx, e)
		if err != nil {
			return progressed, err
		}
		progressed = progressed || done
	}
}

// errSilent: the server sent nothing, not even a heartbeat, for three
// heartbeat periods.
var errSilent = errors.New("binlog: no event or heartbeat for three heartbeat periods")

// nextEvent waits for the next event. Silence counts only while the
// reader waits here, not while it waits for room in the window, so a
// stalled sink does not make a healthy connection look dead (which a
// read timeout on the socket would).
func (s *stream) nextEvent(ctx context.Context, st *replication.BinlogStreamer) (*replication.BinlogEvent, error) {
	wctx, cancel := context.WithTimeout(ctx, 3*s.cfg.Heartbeat)
	defer cancel()
	e, err := st.GetEvent(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, errSilent
	}
	return e, err
}

// decodeRows decodes only the rows of tables the consumer reads; the
// others are skipped undecoded.
func (s *stream) decodeRows(e *replication.RowsEvent, data []byte) error {
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return err
	}
	if !s.tables.relevant(e.Table) {
		return nil
	}
	return e.DecodeData(pos, data)
}

// handle processes one event; committed reports a transaction's end.
func (s *stream) handle(ctx context.Context, e *replication.BinlogEvent) (committed bool, err error) {
	h := e.Header
	switch ev := e.Event.(type) {
	case *replication.RotateEvent:
		s.file = string(ev.NextLogName)
		if !s.began && h.Timestamp != 0 { // a real rotation, between transactions
			s.pos.File, s.pos.Pos = s.file, uint32(ev.Position)
		}
	case *replication.MariadbGTIDEvent:
		s.begin(ev.GTID.String(), h)
		s.mariaGTID = ev.GTID
		s.inTrx = !ev.IsStandalone()
	case *replication.GTIDEvent:
		s.begin(mysqlGTID(h, ev, ""), h)
		s.inTrx = false // BEGIN follows for a transaction
	case *replication.GtidTaggedLogEvent:
		s.begin(mysqlGTID(h, &ev.GTIDEvent, fmt.Sprint(ev.Tag)), h)
		s.inTrx = false
	case *replication.QueryEvent:
		switch q := strings.ToUpper(strings.TrimSpace(string(ev.Query))); {
		case q == "BEGIN":
			if !s.began {
				s.begin("", h)
			}
			s.inTrx = true
		case q == "COMMIT":
			return true, s.commit(ctx, h, ev.GSet)
		case q == "ROLLBACK":
			s.trx.items = s.trx.items[:0]
			return true, s.commit(ctx, h, ev.GSet)
		case !s.inTrx: // DDL or another statement logged alone
			if !s.began {
				s.begin("", h)
			}
			return true, s.commit(ctx, h, ev.GSet)
		}
	case *replication.XIDEvent:
		return true, s.commit(ctx, h, ev.GSet)
	case *replication.GenericEvent:
		if h.EventType == replication.XA_PREPARE_LOG_EVENT && s.began {
			// XA (which hotrow does not use): whether it commits is logged
			// later, apart from its rows. Its changes are not in the feed.
			s.log.Warn("XA transaction skipped: its changes are not in the order feed", "gtid", s.trx.gtid,
				"file", s.trx.file, "pos", s.trx.pos)
			s.trx.items = s.trx.items[:0]
			return true, s.commit(ctx, h, nil)
		}
	case *replication.RowsEvent:
		if s.began {
			if err := s.trx.addRows(s.tables, ev); err != nil {
				return false, decodeError{err}
			}
		}
	}
	return false, nil
}

// mysqlGTID formats a MySQL GTID as uuid[:tag]:gno; empty for an
// anonymous transaction (gtid_mode=OFF).
func mysqlGTID(h *replication.EventHeader, ev *replication.GTIDEvent, tag string) string {
	if h.EventType == replication.ANONYMOUS_GTID_EVENT {
		return ""
	}
	u, err := uuid.FromBytes(ev.SID)
	if err != nil {
		return ""
	}
	if tag != "" {
		return u.String() + ":" + tag + ":" + strconv.FormatInt(ev.GNO, 10)
	}
	return u.String() + ":" + strconv.FormatInt(ev.GNO, 10)
}

func (s *stream) begin(gtid string, h *replication.EventHeader) {
	s.trx.reset(gtid, s.file, h.LogPos-h.EventSize, h.ServerID)
	s.began = true
}

// commit ends the transaction: its messages and end boundary go to the
// window. gset is the syncer's GTID set after it (MySQL).
func (s *stream) commit(ctx context.Context, h *replication.EventHeader, gset gomysql.GTIDSet) error {
	if !s.began {
		return nil // the tail of a transaction begun before the start position
	}
	s.began, s.inTrx = false, false
	committed := time.Unix(int64(h.Timestamp), 0)
	msgs, err := s.trx.commit(committed)
	if err != nil {
		return decodeError{err}
	}
	switch {
	case s.gset != nil:
		if s.trx.gtid != "" {
			if err := s.gset.AddSet(&s.mariaGTID); err != nil {
				return decodeError{fmt.Errorf("binlog: gtid %s: %w", s.trx.gtid, err)}
			}
		}
		s.pos.GTID = s.gset.String()
	case gset != nil:
		s.pos.GTID = gset.String()
	}
	s.pos.File, s.pos.Pos, s.pos.Committed = s.file, h.LogPos, committed
	s.lastCommit.Store(committed.UnixMicro())
	if s.trx.checkpointOnly {
		return nil // a checkpoint write: moving the checkpoint past it would write another
	}
	if err := s.w.add(ctx, msgs, s.pos); err != nil {
		return err
	}
	s.read.Add(uint64(len(msgs)))
	return nil
}

// quietHandler passes on go-mysql's warnings and errors only: its info
// lines (the whole syncer config at every connection, each rotation) are
// noise next to the consumer's own.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
