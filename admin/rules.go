package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotrow/hotrow/merger"
	"github.com/hotrow/hotrow/schema"
)

// RulesTable is the table of hotrow's meta schema that holds the saved
// hot rules, shared by every instance using the same meta schema.
const RulesTable = "hot_rules"

// rulesDDL creates RulesTable; %s is the quoted meta schema. One rule per
// table: the merger queues per table.
const rulesDDL = `CREATE TABLE IF NOT EXISTS %s.hot_rules (
  schema_name  VARCHAR(64) NOT NULL,
  table_name   VARCHAR(64) NOT NULL,
  key_column   VARCHAR(64) NOT NULL,
  stock_column VARCHAR(64) NOT NULL,
  enabled      TINYINT NOT NULL DEFAULT 1,
  PRIMARY KEY (schema_name, table_name)
) ENGINE=InnoDB`

// ruleRow is one row of hot_rules.
type ruleRow struct {
	merger.Rule
	Enabled bool
}

// ruleStore keeps the three copies of the hot rules, as ProxySQL does:
// memory (what SELECT, INSERT, UPDATE and DELETE on hot_rules see and
// change), runtime (the merger.RuleSet in force) and disk (the hot_rules
// table of the meta schema). LOAD HOT RULES TO RUNTIME copies memory to
// runtime, SAVE HOT RULES TO DISK memory to disk, LOAD HOT RULES FROM DISK
// disk to memory. poll notices a disk change made by another instance and
// copies disk to memory and runtime.
type ruleStore struct {
	db      *sql.DB
	table   string // quoted meta schema and table
	log     *slog.Logger
	runtime *merger.RuleSet

	mu     sync.Mutex
	memory []ruleRow // guarded by mu
	disk   []ruleRow // guarded by mu; disk as last read or written
	// diskGen counts the updates of disk (guarded by mu): a poll whose
	// read began before one of them is stale and discarded.
	diskGen uint64
}

// ensure creates the hot_rules table and, when it is empty, seeds it with
// seed (enabled); then memory and runtime take the table's rules.
func (s *ruleStore) ensure(ctx context.Context, meta string, seed []merger.Rule) error {
	q := schema.QuoteIdent(meta)
	if _, err := s.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+q); err != nil {
		return fmt.Errorf("admin: create meta schema: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf(rulesDDL, q)); err != nil {
		return fmt.Errorf("admin: create %s.%s: %w", meta, RulesTable, err)
	}
	disk, err := s.readDisk(ctx)
	if err != nil {
		return err
	}
	if len(disk) == 0 && len(seed) > 0 {
		rows := make([]ruleRow, len(seed))
		for i, r := range seed {
			rows[i] = ruleRow{Rule: r, Enabled: true}
		}
		if err := s.writeDisk(ctx, rows, true); err != nil {
			return err
		}
		disk = rows
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memory, s.disk = slices.Clone(disk), disk
	s.runtime.Set(enabledRules(disk))
	return nil
}

func enabledRules(rows []ruleRow) []merger.Rule {
	var out []merger.Rule
	for _, r := range rows {
		if r.Enabled {
			out = append(out, r.Rule)
		}
	}
	return out
}

// readDisk reads hot_rules in primary key order.
func (s *ruleStore) readDisk(ctx context.Context) ([]ruleRow, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT schema_name, table_name, key_column, stock_column, enabled FROM "+
		s.table+" ORDER BY schema_name, table_name")
	if err != nil {
		return nil, fmt.Errorf("admin: read %s: %w", RulesTable, err)
	}
	defer rows.Close()
	var out []ruleRow
	for rows.Next() {
		var r ruleRow
		if err := rows.Scan(&r.Schema, &r.Table, &r.Key, &r.Stock, &r.Enabled); err != nil {
			return nil, fmt.Errorf("admin: read %s: %w", RulesTable, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("admin: read %s: %w", RulesTable, err)
	}
	return out, nil
}

// writeDisk replaces the table's rows by rows in one transaction (only
// inserting missing ones when onlyIfEmpty, so that two instances seeding
// at once do not fail).
func (s *ruleStore) writeDisk(ctx context.Context, rows []ruleRow, onlyIfEmpty bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("admin: save %s: %w", RulesTable, err)
	}
	defer tx.Rollback()
	verb := "INSERT IGNORE"
	if !onlyIfEmpty {
		verb = "INSERT"
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+s.table); err != nil {
			return fmt.Errorf("admin: save %s: %w", RulesTable, err)
		}
	}
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, verb+" INTO "+s.table+
			" (schema_name, table_name, key_column, stock_column, enabled) VALUES (?, ?, ?, ?, ?)",
			r.Schema, r.Table, r.Key, r.Stock, r.Enabled); err != nil {
			return fmt.Errorf("admin: save %s: %w", RulesTable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("admin: save %s: %w", RulesTable, err)
	}
	return nil
}

// validate checks that r can be merged (validateRule).
func (s *ruleStore) validate(ctx context.Context, r merger.Rule) error {
	return validateRule(ctx, s.db, r)
}

// validateRule checks that r can be merged: the table and columns exist,
// the key column alone is a unique key, and the stock column is numeric.
func validateRule(ctx context.Context, db *sql.DB, r merger.Rule) error {
	if r.Schema == "" || r.Table == "" || r.Key == "" || r.Stock == "" {
		return gomysql.NewError(gomysql.ER_WRONG_ARGUMENTS, "hot rule: schema_name, table_name, key_column and stock_column must not be empty")
	}
	if strings.EqualFold(r.Key, r.Stock) {
		return gomysql.NewError(gomysql.ER_WRONG_ARGUMENTS, fmt.Sprintf("hot rule %s: key_column and stock_column must differ", r))
	}
	t, err := schema.Load(ctx, db, r.Schema, r.Table, r.Key, r.Stock)
	switch {
	case errors.Is(err, schema.ErrNoColumn):
		return gomysql.NewError(gomysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("hot rule %s: no such table or column (%v)", r, err))
	case err != nil:
		return gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, fmt.Sprintf("hot rule %s: %v", r, err))
	case !t.KeyUnique:
		return gomysql.NewError(gomysql.ER_WRONG_ARGUMENTS, fmt.Sprintf("hot rule %s: key column %s is not a unique key of %s.%s on its own (want a PRIMARY KEY or UNIQUE index of that one column)", r, r.Key, r.Schema, r.Table))
	case !numericType(t.StockType):
		return gomysql.NewError(gomysql.ER_WRONG_ARGUMENTS, fmt.Sprintf("hot rule %s: stock column %s is %s, not numeric", r, r.Stock, t.StockType))
	}
	return nil
}

func numericType(dataType string) bool {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float", "double":
		return true
	}
	return false
}

// loadToRuntime validates memory's enabled rules and puts them in force.
func (s *ruleStore) loadToRuntime(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := enabledRules(s.memory)
	for _, r := range rules {
		if err := s.validate(ctx, r); err != nil {
			return err
		}
	}
	s.runtime.Set(rules)
	s.log.Info("hot rules loaded to runtime", "rules", len(rules))
	return nil
}

// saveToDisk writes memory to the hot_rules table.
func (s *ruleStore) saveToDisk(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeDisk(ctx, s.memory, false); err != nil {
		return gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, err.Error())
	}
	s.disk = slices.Clone(s.memory)
	s.diskGen++
	s.log.Info("hot rules saved to disk", "rules", len(s.memory))
	return nil
}

// loadFromDisk replaces memory by the hot_rules table.
func (s *ruleStore) loadFromDisk(ctx context.Context) error {
	disk, err := s.readDisk(ctx)
	if err != nil {
		return gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memory, s.disk = slices.Clone(disk), disk
	s.diskGen++
	return nil
}

// poll copies disk to memory and runtime when another instance changed
// it since this one last read or wrote it. Invalid rules are left out of
// runtime, with a warning.
func (s *ruleStore) poll(ctx context.Context) error {
	s.mu.Lock()
	gen := s.diskGen
	s.mu.Unlock()
	disk, err := s.readDisk(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A SAVE or LOAD since the read began: what was read may predate it.
	if gen != s.diskGen || slices.Equal(disk, s.disk) {
		return nil
	}
	var rules []merger.Rule
	for _, r := range enabledRules(disk) {
		if err := s.validate(ctx, r); err != nil {
			s.log.Warn("hot rule from disk not loaded", "rule", r.String(), "err", err)
			continue
		}
		rules = append(rules, r)
	}
	s.memory, s.disk = slices.Clone(disk), disk
	s.diskGen++
	s.runtime.Set(rules)
	s.log.Info("hot rules changed on disk: loaded to runtime", "rules", len(rules))
	return nil
}

// snapshot returns memory.
func (s *ruleStore) snapshot() []ruleRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.memory)
}

// edit runs f on memory under the lock; f returns the new memory.
func (s *ruleStore) edit(f func(memory []ruleRow) ([]ruleRow, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := f(slices.Clone(s.memory))
	if err != nil {
		return err
	}
	s.memory = next
	return nil
}
