package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// tally is what the clients of one side were told, per SKU: the net stock
// change of statements that reported success, and the absolute quantity of
// statements whose outcome is unknown (connection lost mid-statement).
type tally struct {
	net, unsure []atomic.Int64
}

func newTally(skus int) *tally {
	return &tally{net: make([]atomic.Int64, skus+1), unsure: make([]atomic.Int64, skus+1)}
}

// sideRun is the state the clients of one side share.
type sideRun struct {
	sc    *Scenario
	db    *sql.DB
	prep  map[string]*sql.Stmt // server-side prepared statements, nil for text
	zipf  *Zipf
	tally *tally

	measuring atomic.Bool // past the warm-up
	stop      atomic.Bool // clients return after their current statement
	ops       atomic.Int64
	granted   atomic.Int64
	soldOutAt atomic.Int64 // UnixNano of the last unit's grant, 0 before
}

// worker is one closed-loop connection user; its fields are its own.
type worker struct {
	s      *sideRun
	r      *rand.Rand
	hist   Histogram
	errors map[string]int64
	// measured: the current step began in the measured window.
	measured bool
}

// run loops until the side stops.
func (c *worker) run(ctx context.Context) {
	for !c.s.stop.Load() && ctx.Err() == nil {
		c.once(ctx)
	}
}

// once runs one step and, when it began past the warm-up, records its
// latency and error.
func (c *worker) once(ctx context.Context) {
	c.measured = c.s.measuring.Load()
	start := time.Now()
	err := c.step(ctx)
	if !c.measured {
		return
	}
	c.hist.Record(time.Since(start))
	c.s.ops.Add(1)
	if err != nil {
		c.errors[errorKey(err)]++
		var myErr *mysql.MySQLError
		if !errors.As(err, &myErr) {
			// A network or driver error comes back at once; do not spin.
			time.Sleep(time.Millisecond)
		}
	}
}

func (c *worker) sku() int {
	sc := c.s.sc
	switch {
	case sc.SellOut && !c.measured:
		return 0
	case sc.Keys == UniformKeys:
		return 1 + c.r.IntN(sc.SKUs)
	case sc.Keys == ZipfKeys:
		return c.s.zipf.Next(c.r)
	}
	return 1
}

// step runs one statement (or one transaction) of the scenario.
func (c *worker) step(ctx context.Context) error {
	sc, sku := c.s.sc, c.sku()
	const qty = 1
	if sc.ChurnPct > 0 && c.r.IntN(100) < sc.ChurnPct {
		if err := c.logout(ctx); err != nil {
			return err
		}
	}
	switch p := c.r.IntN(100); {
	case p < sc.ReadPct:
		var stock int64
		return c.queryRow(ctx, selectSQL, sku).Scan(&stock)
	case p < sc.ReadPct+sc.RestockPct:
		res, err := c.exec(ctx, restockSQL, qty, sku)
		return c.settle(sku, +qty, res, err)
	case sc.Tx:
		return c.orderTx(ctx, sku, qty)
	default:
		res, err := c.exec(ctx, decrementSQL, qty, sku, qty)
		return c.settle(sku, -qty, res, err)
	}
}

// logout closes one of the side's connections (COM_QUIT): the statement
// that follows logs in on a new one.
func (c *worker) logout(ctx context.Context) error {
	conn, err := c.s.db.Conn(ctx)
	if err != nil {
		return err
	}
	// database/sql closes a connection whose Raw returns ErrBadConn.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	return nil
}

func (c *worker) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.s.prep[query]; st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.s.db.ExecContext(ctx, query, args...)
}

func (c *worker) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.s.prep[query]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.s.db.QueryRowContext(ctx, query, args...)
}

// orderTx is BEGIN; INSERT order; UPDATE stock; COMMIT, rolled back when
// the stock is short. Only a failed COMMIT leaves the outcome in doubt.
func (c *worker) orderTx(ctx context.Context, sku int, qty int64) error {
	tx, err := c.s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, orderSQL, sku, qty); err != nil {
		_ = tx.Rollback()
		return err
	}
	res, err := tx.ExecContext(ctx, decrementSQL, qty, sku, qty)
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		_ = tx.Rollback()
		return err
	}
	err = tx.Commit()
	return c.settle(sku, -qty, nil, err)
}

// settle books the outcome of a stock change of delta on sku: res == nil
// with err == nil means it is known to have been applied.
func (c *worker) settle(sku int, delta int64, res sql.Result, err error) error {
	t := c.s.tally
	if err != nil {
		if outcomeUnknown(err) {
			t.unsure[sku].Add(max(delta, -delta))
		}
		return err
	}
	if res != nil {
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != 1 {
			return nil // refused: short of stock
		}
	}
	left := t.net[sku].Add(delta)
	if delta < 0 && c.measured {
		c.s.granted.Add(-delta)
	}
	if c.s.sc.SellOut && sku == 1 && left == -c.s.sc.Stock {
		c.s.soldOutAt.Store(time.Now().UnixNano())
		c.s.stop.Store(true)
	}
	return nil
}

// outcomeUnknown reports whether a failed statement may nevertheless have
// been applied: the server answered with an error (*mysql.MySQLError),
// the statement was not applied; anything else (lost connection, timeout,
// cancellation) leaves it in doubt.
func outcomeUnknown(err error) bool {
	var myErr *mysql.MySQLError
	return !errors.As(err, &myErr) && !errors.Is(err, sql.ErrNoRows)
}

// errorKey names an error for the report: its MySQL error number, or a
// short class for driver and network errors.
func errorKey(err error) string {
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &myErr):
		return strconv.Itoa(int(myErr.Number))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone):
		return "conn"
	case errors.Is(err, sql.ErrNoRows):
		return "no-rows"
	}
	return "other"
}
