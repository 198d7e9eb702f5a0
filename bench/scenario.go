package bench

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// KeyDist says which SKU a statement touches.
type KeyDist int

// Key distributions.
const (
	// OneKey: every statement touches SKU 1, the hot row.
	OneKey KeyDist = iota
	// UniformKeys: SKUs 1..SKUs with equal probability.
	UniformKeys
	// ZipfKeys: SKU k with probability proportional to 1/k^ZipfS.
	ZipfKeys
)

// Scenario is one workload. Scenarios differ only in these knobs; one
// client loop (client.go) interprets them, so that direct and proxy and
// every scenario run the same code.
type Scenario struct {
	Name    string
	Summary string
	// SKUs is the number of inventory rows (sku_id 1..SKUs).
	SKUs int
	// Stock is the initial stock of every SKU.
	Stock int64
	Keys  KeyDist
	ZipfS float64
	// ReadPct is the percentage of point SELECTs of one SKU's stock.
	ReadPct int
	// RestockPct is the percentage of increments (stock = stock + q).
	RestockPct int
	// Tx wraps every decrement in BEGIN; INSERT order; UPDATE; COMMIT
	// (ROLLBACK when the UPDATE is refused).
	Tx bool
	// Prepared uses server-side prepared statements (binary protocol);
	// otherwise the driver interpolates parameters into text queries.
	Prepared bool
	// SellOut makes the side stop as soon as the stock of SKU 1 is gone and
	// requires that exactly Stock units were granted. Warm-up then runs on
	// SKU 0, a separate row, so that the sale starts with full stock.
	SellOut bool
	// ChurnPct is the percentage of steps that first log one of the side's
	// connections out, so that the statement logs in on a new one.
	ChurnPct int
}

// plenty is the stock of rows that must not run out during a run.
const plenty = 1 << 40

// DefaultFlashStock is the flash-sale stock when none is given.
const DefaultFlashStock = 20000

// Scenarios returns every scenario, in the order they are documented.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "hot", Summary: "one SKU, autocommit guarded decrement", SKUs: 1, Stock: plenty},
		{Name: "hot-prepared", Summary: "hot with server-side prepared statements", SKUs: 1, Stock: plenty, Prepared: true},
		{Name: "hot-tx", Summary: "BEGIN; INSERT order; UPDATE hot SKU; COMMIT", SKUs: 1, Stock: plenty, Tx: true},
		{Name: "zipf", Summary: "1,000 SKUs, Zipf s=1.1", SKUs: 1000, Stock: plenty, Keys: ZipfKeys, ZipfS: 1.1},
		{Name: "cold", Summary: "10,000 SKUs, uniform", SKUs: 10000, Stock: plenty, Keys: UniformKeys},
		{Name: "cold-tx", Summary: "hot-tx on 10,000 SKUs, uniform: what the server does with no hot row", SKUs: 10000, Stock: plenty, Keys: UniformKeys, Tx: true},
		{Name: "mixed", Summary: "90% point SELECT, 10% hot decrement", SKUs: 1, Stock: plenty, ReadPct: 90},
		{Name: "select", Summary: "point SELECT of one SKU by primary key (pass-through)", SKUs: 1, Stock: plenty, ReadPct: 100},
		{Name: "flash-sale", Summary: "one SKU, demand far above stock: exactly the stock sold", SKUs: 1, Stock: DefaultFlashStock, SellOut: true},
		{Name: "restock", Summary: "one SKU near empty, 50% decrements, 50% increments", SKUs: 1, Stock: 100, RestockPct: 50},
		{Name: "soak", Summary: "long run (--duration 1h): zipf, 50% SELECT, 10% restock, 2% of steps log in anew", SKUs: 1000, Stock: plenty, Keys: ZipfKeys, ZipfS: 1.1, ReadPct: 50, RestockPct: 10, ChurnPct: 2},
	}
}

// ScenarioNames lists the known scenario names.
func ScenarioNames() []string {
	var names []string
	for _, s := range Scenarios() {
		names = append(names, s.Name)
	}
	return names
}

// LookupScenarios resolves comma-separated names ("all" for every one).
func LookupScenarios(list string) ([]Scenario, error) {
	all := Scenarios()
	if list == "all" {
		return all, nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q (known: %s, all)", name, strings.Join(ScenarioNames(), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// The statements every scenario uses. The table names are not qualified:
// the connection's default database is the bench database, as an
// application's would be.
const (
	decrementSQL = "UPDATE inventory SET stock = stock - ? WHERE sku_id = ? AND stock >= ?"
	restockSQL   = "UPDATE inventory SET stock = stock + ? WHERE sku_id = ?"
	selectSQL    = "SELECT stock FROM inventory WHERE sku_id = ?"
	orderSQL     = "INSERT INTO orders (sku_id, qty) VALUES (?, ?)"
)

var schemaSQL = []string{
	`CREATE TABLE IF NOT EXISTS inventory (
		sku_id BIGINT NOT NULL PRIMARY KEY,
		stock  BIGINT NOT NULL
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS orders (
		id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		sku_id     BIGINT NOT NULL,
		qty        INT NOT NULL,
		created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
	) ENGINE=InnoDB`,
	`TRUNCATE TABLE inventory`,
	`TRUNCATE TABLE orders`,
}

// initialStock returns the stock of SKUs 0..SKUs after reset: SKU 0 is the
// warm-up row of sell-out scenarios.
func (s *Scenario) initialStock() []int64 {
	stock := make([]int64, s.SKUs+1)
	for i := range stock {
		stock[i] = s.Stock
	}
	stock[0] = plenty
	return stock
}

// reset (re)creates the scenario's tables on db (a direct connection whose
// default database is the bench database) with the initial stock.
func (s *Scenario) reset(ctx context.Context, db *sql.DB) error {
	for _, q := range schemaSQL {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("reset %s: %w", s.Name, err)
		}
	}
	stock := s.initialStock()
	const rowsPerInsert = 1000
	for lo := 0; lo < len(stock); lo += rowsPerInsert {
		hi := min(lo+rowsPerInsert, len(stock))
		var b strings.Builder
		b.WriteString("INSERT INTO inventory (sku_id, stock) VALUES ")
		for k := lo; k < hi; k++ {
			if k > lo {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "(%d,%d)", k, stock[k])
		}
		if _, err := db.ExecContext(ctx, b.String()); err != nil {
			return fmt.Errorf("reset %s: %w", s.Name, err)
		}
	}
	return nil
}

// check compares the final table contents with what the clients were told
// and returns the violations (none: correct).
func (s *Scenario) check(ctx context.Context, db *sql.DB, t *tally) ([]string, error) {
	initial := s.initialStock()
	final := make([]int64, len(initial))
	seen := make([]bool, len(initial))
	rows, err := db.QueryContext(ctx, "SELECT sku_id, stock FROM inventory")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v int64
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		if k < 0 || k >= int64(len(final)) {
			return nil, fmt.Errorf("unexpected sku_id %d", k)
		}
		final[k], seen[k] = v, true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var bad []string
	report := func(format string, args ...any) {
		if len(bad) < 10 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	for k := range initial {
		want, unsure := initial[k]+t.net[k].Load(), t.unsure[k].Load()
		switch {
		case !seen[k]:
			report("sku %d: row missing", k)
		case final[k] < 0:
			report("sku %d: oversold, stock %d", k, final[k])
		case final[k] < want-unsure || final[k] > want+unsure:
			report("sku %d: stock %d, want initial %d + net %d told to clients (±%d in doubt)", k, final[k], initial[k], t.net[k].Load(), unsure)
		}
	}
	if s.Tx {
		if err := s.checkOrders(ctx, db, initial, final, report); err != nil {
			return nil, err
		}
	}
	if s.SellOut && final[1] == 0 && t.net[1].Load() != -s.Stock {
		report("sold out but clients were granted %d of %d", -t.net[1].Load(), s.Stock)
	}
	return bad, nil
}

// checkOrders verifies, for transactional scenarios, that every unit that
// left the stock has its order row (stock + ordered = initial).
func (s *Scenario) checkOrders(ctx context.Context, db *sql.DB, initial, final []int64, report func(string, ...any)) error {
	ordered := make([]int64, len(initial))
	rows, err := db.QueryContext(ctx, "SELECT sku_id, SUM(qty) FROM orders GROUP BY sku_id")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, q int64
		if err := rows.Scan(&k, &q); err != nil {
			return err
		}
		if k >= 0 && k < int64(len(ordered)) {
			ordered[k] = q
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for k := range initial {
		if final[k]+ordered[k] != initial[k] {
			report("sku %d: stock %d + ordered %d != initial %d", k, final[k], ordered[k], initial[k])
		}
	}
	return nil
}
