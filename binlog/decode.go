package binlog

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/shopspring/decimal"

	"github.com/hotrow/hotrow/schema"
)

// tables says what the consumer does with each table's row changes.
type tables struct {
	ledger tableName
	// checkpoints is where consumers write their checkpoints: a
	// transaction that only does that is no progress worth a checkpoint
	// (writing one would make the next).
	checkpoints tableName
	hot         map[tableName]schema.Rule
	include     map[tableName]bool
	// claimTables are the claims and verdicts tables (claims.go).
	claimTables
}

type tableName struct{ schema, table string }

func (t tableName) String() string { return t.schema + "." + t.table }

func newTables(cfg Config) *tables {
	t := &tables{ledger: tableName{cfg.MetaSchema, schema.LedgerTable},
		checkpoints: tableName{cfg.MetaSchema, schema.CheckpointsTable},
		hot:         make(map[tableName]schema.Rule), include: make(map[tableName]bool),
		claimTables: newClaimTables(cfg.MetaSchema)}
	for _, r := range cfg.HotRules {
		t.hot[tableName{r.Schema, r.Table}] = r
	}
	for _, s := range cfg.Include {
		db, table, _ := strings.Cut(s, ".")
		t.include[tableName{db, table}] = true
	}
	return t
}

// relevant reports whether rows of the table must be decoded.
func (t *tables) relevant(m *replication.TableMapEvent) bool {
	n := tableName{string(m.Schema), string(m.Table)}
	if n == t.ledger || t.include[n] || n == t.claimsTable || n == t.verdicts {
		return true
	}
	_, ok := t.hot[n]
	return ok
}

// txn buffers one transaction's events until its commit.
type txn struct {
	gtid     string // empty when the server logs no GTID
	file     string
	pos      uint32 // offset of the transaction's first event
	serverID uint32
	// items are the transaction's candidate events in binlog order.
	items []item
	// nHot and nRow count the row changes of hot and included tables so
	// far: the position part of their events' ids.
	nHot, nRow int
	// merged names the tables of the transaction's ledger rows (lower
	// case); nil while it has none. Such a transaction is a merged batch:
	// its changes of those tables are the ledger rows' deductions.
	merged map[tableName]bool
	// checkpointOnly: the transaction changed checkpoint rows and nothing
	// else so far.
	checkpointOnly bool
	changedOther   bool
	// claimIDs are the claims the transaction (a merged batch) wrote:
	// their ledger rows are no events (claims.go).
	claimIDs map[string]bool
	// cancel: the transaction cancels claims; its hot-table changes
	// restore their stock and are no events (claims.go).
	cancel bool
}

// item is a candidate event; a hot-table change of a table the
// transaction's ledger rows name is dropped at commit.
type item struct {
	ev     Event
	hot    tableName // set for a hot-table change, lower case
	ledger bool      // a ledger row's event
}

func (t *txn) reset(gtid, file string, pos, serverID uint32) {
	clear(t.items)
	*t = txn{gtid: gtid, file: file, pos: pos, serverID: serverID, items: t.items[:0]}
}

// id is the prefix of the transaction's row-derived event ids: its GTID,
// or file:pos of its start.
func (t *txn) id() string {
	if t.gtid != "" {
		return t.gtid
	}
	return t.file + ":" + strconv.FormatUint(uint64(t.pos), 10)
}

// addRows buffers the events of one rows event.
func (t *txn) addRows(tb *tables, e *replication.RowsEvent) error {
	m := e.Table
	if m == nil {
		return nil
	}
	name := tableName{string(m.Schema), string(m.Table)}
	if name == tb.checkpoints {
		t.checkpointOnly = !t.changedOther
		return nil
	}
	t.checkpointOnly, t.changedOther = false, true
	names := m.ColumnNameString()
	if len(names) == 0 && len(e.Rows) > 0 {
		return fmt.Errorf("binlog: table map of %s has no column names: set binlog_row_metadata=FULL on the server", name)
	}
	typ := e.Type()
	step := 1
	if typ == replication.EnumRowsEventTypeUpdate {
		step = 2
	}
	if handled, err := t.addClaimRows(tb, name, typ, names, e.Rows); handled {
		return err
	}
	if name == tb.ledger {
		if typ != replication.EnumRowsEventTypeInsert {
			return nil // retention deletes
		}
		for _, row := range e.Rows {
			r, err := schema.DecodeLedgerRow(names, row)
			if err != nil {
				return fmt.Errorf("binlog: %w", err)
			}
			t.addLedger(r)
		}
		return nil
	}
	rule, hot := tb.hot[name]
	include := tb.include[name]
	for i := 0; i+step <= len(e.Rows); i += step {
		var before, after []any
		switch typ {
		case replication.EnumRowsEventTypeInsert:
			after = e.Rows[i]
		case replication.EnumRowsEventTypeDelete:
			before = e.Rows[i]
		case replication.EnumRowsEventTypeUpdate:
			before, after = e.Rows[i], e.Rows[i+1]
		default:
			return nil
		}
		if hot {
			if before != nil && after != nil {
				if err := t.addHot(name, rule, names, before, after); err != nil {
					return err
				}
			}
			t.nHot++
		}
		if include {
			t.addRow(name, m, names, before, after)
			t.nRow++
		}
	}
	return nil
}

func (t *txn) addLedger(r schema.LedgerRow) {
	t.items = append(t.items, item{ev: ledgerEvent(r), ledger: true})
	if t.merged == nil {
		t.merged = make(map[tableName]bool)
	}
	t.merged[lowerName(tableName{r.Schema, r.Table})] = true
}

// ledgerEvent is the event of a ledger row (or of a confirmation's copy
// of one).
func ledgerEvent(r schema.LedgerRow) Event {
	ev := Event{ID: r.ID(), Kind: KindOrder, Table: r.Schema + "." + r.Table, Key: r.Key,
		StockAfter: jsonNumber(r.StockAfter), Batch: r.BatchID, ConnID: r.ConnID}
	if !r.CreatedAt.IsZero() {
		ev.CommittedAt = r.CreatedAt.UnixMicro()
	}
	q := jsonNumber(r.Delta)
	if abs, neg := strings.CutPrefix(string(q), "-"); neg {
		q = json.Number(abs)
	} else if d, err := decimal.NewFromString(string(q)); err == nil && d.IsPositive() {
		ev.Kind = KindRestock
	}
	ev.Quantity = q
	return ev
}

// lowerName folds a table name's case, to match a ledger row's table
// (named as the hot rule names it) with the binlog's.
func lowerName(n tableName) tableName {
	return tableName{strings.ToLower(n.schema), strings.ToLower(n.table)}
}

// addHot buffers an order or restock event for an UPDATE of a hot table
// whose stock column changed.
func (t *txn) addHot(name tableName, rule schema.Rule, names []string, before, after []any) error {
	si, ki := indexOf(names, rule.Stock), indexOf(names, rule.Key)
	if si < 0 || ki < 0 || si >= len(before) || si >= len(after) || ki >= len(after) {
		return fmt.Errorf("binlog: hot rule %s: table has no column %s or %s (columns %q)", rule, rule.Key, rule.Stock, names)
	}
	b, okb := toDecimal(before[si])
	a, oka := toDecimal(after[si])
	if !okb || !oka {
		if before[si] == nil || after[si] == nil {
			return nil // NULL stock: no quantity
		}
		return fmt.Errorf("binlog: hot rule %s: stock value %T is not a number", rule, after[si])
	}
	d := a.Sub(b)
	if d.IsZero() {
		return nil
	}
	kind := KindOrder
	if d.IsPositive() {
		kind = KindRestock
	}
	key := keyText(after[ki])
	t.items = append(t.items, item{
		hot: lowerName(name),
		ev: Event{ID: t.id() + ":" + strconv.Itoa(t.nHot), Kind: kind, Table: name.String(), Key: key,
			Quantity: json.Number(d.Abs().String()), StockAfter: json.Number(a.String())},
	})
	return nil
}

// addRow buffers a row event of an included table.
func (t *txn) addRow(name tableName, m *replication.TableMapEvent, names []string, before, after []any) {
	ev := Event{ID: t.id() + ":" + strconv.Itoa(t.nRow) + ":row", Kind: KindRow, Table: name.String(),
		Before: rowMap(m, names, before), After: rowMap(m, names, after)}
	switch {
	case before == nil:
		ev.Op = "c"
	case after == nil:
		ev.Op = "d"
	default:
		ev.Op = "u"
	}
	img := after
	if img == nil {
		img = before
	}
	var key []string
	for _, i := range m.PrimaryKey {
		if int(i) < len(img) {
			key = append(key, keyText(img[i]))
		}
	}
	ev.Key = strings.Join(key, ",")
	t.items = append(t.items, item{ev: ev})
}

// commit returns the transaction's messages: every ledger row, every
// hot-table change unless the transaction is a merged batch of that
// table, every row event. committed is the commit event's time.
//
// A merged batch changes a hot table's rows only through requests it
// granted, each with its ledger row, so skipping the table's changes in a
// transaction with ledger rows of it skips exactly the batch's own
// changes, even when a request's key (the ledger's key_value, as the
// client wrote it) differs from the row's under the column's collation
// ('A' for 'a', '042' for 42).
func (t *txn) commit(committed time.Time) ([]Message, error) {
	if len(t.items) == 0 {
		return nil, nil
	}
	msgs := make([]Message, 0, len(t.items))
	src := Source{GTID: t.gtid, File: t.file, Pos: t.pos, ServerID: t.serverID}
	for i := range t.items {
		it := &t.items[i]
		if it.hot.table != "" && t.merged[it.hot] {
			continue // the merged batch's own change: its ledger rows are the events
		}
		if it.hot.table != "" && t.cancel {
			continue // a cancelled claim's stock coming back: no event
		}
		if it.ledger && t.claimIDs[it.ev.ID] {
			continue // a claim: its event comes with its confirmation
		}
		ev := &it.ev
		at := committed
		if ev.CommittedAt != 0 {
			at = time.UnixMicro(ev.CommittedAt) // a ledger row's own time, in µs
		} else {
			ev.CommittedAt = committed.UnixMicro()
		}
		ev.Source = src
		data, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("binlog: encode event %s: %w", ev.ID, err)
		}
		msgs = append(msgs, Message{ID: ev.ID, Key: ev.Table + "/" + ev.Key, Data: data, Committed: at})
	}
	return msgs, nil
}

// jsonNumber is s as a JSON number: as is when it is one in plain decimal
// notation, else its decimal value (" 5", "+5", ".5" become 5, 5, 0.5),
// else empty (the field is left out rather than the event refused).
func jsonNumber(s string) json.Number {
	plain := s != "" && s != "-"
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= '0' && c <= '9' || c == '-' && i == 0
	}
	if plain && (len(s) == 1 || s[0] != '0') && !strings.HasPrefix(s, "-0") {
		return json.Number(s)
	}
	d, err := decimal.NewFromString(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return json.Number(d.String())
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if strings.EqualFold(n, name) {
			return i
		}
	}
	return -1
}

// toDecimal reads a numeric column value exactly.
func toDecimal(v any) (decimal.Decimal, bool) {
	switch v := v.(type) {
	case int8:
		return decimal.NewFromInt(int64(v)), true
	case int16:
		return decimal.NewFromInt(int64(v)), true
	case int32:
		return decimal.NewFromInt(int64(v)), true
	case int64:
		return decimal.NewFromInt(v), true
	case uint8:
		return decimal.NewFromInt(int64(v)), true
	case uint16:
		return decimal.NewFromInt(int64(v)), true
	case uint32:
		return decimal.NewFromInt(int64(v)), true
	case uint64:
		d, err := decimal.NewFromString(strconv.FormatUint(v, 10))
		return d, err == nil
	case decimal.Decimal:
		return v, true
	case float32:
		return decimal.NewFromFloat32(v), true
	case float64:
		return decimal.NewFromFloat(v), true
	case string, []byte:
		d, err := decimal.NewFromString(keyText(v))
		return d, err == nil
	}
	return decimal.Decimal{}, false
}

// keyText formats a key value as the ledger writes it.
func keyText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case decimal.Decimal:
		return v.String()
	case time.Time:
		return v.Format("2006-01-02 15:04:05.999999")
	}
	return fmt.Sprint(v)
}

// rowMap is a row image by column name, nil for a missing image. Text
// stays text, JSON columns stay JSON, decimals keep their digits.
func rowMap(m *replication.TableMapEvent, names []string, row []any) map[string]any {
	if row == nil {
		return nil
	}
	out := make(map[string]any, len(row))
	for i, v := range row {
		if i >= len(names) {
			break
		}
		if b, ok := v.([]byte); ok {
			switch {
			case i < len(m.ColumnType) && m.ColumnType[i] == gomysql.MYSQL_TYPE_JSON && json.Valid(b):
				v = json.RawMessage(b)
			case utf8.Valid(b):
				v = string(b)
			}
		}
		out[names[i]] = v
	}
	return out
}
