package merger

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hotParallelism makes b.RunParallel run n goroutines in all.
func hotParallelism(b *testing.B, n int) { b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0))) }

// BenchmarkBatch measures requests through Do on one hot row from 16 and
// 256 goroutines, each a client with its own connection id, with and
// without gathering (Config.GatherWait): ns/op is the
// inverse of the throughput, cpu-ns/op the CPU this process (merger, its
// MySQL client and the callers) spends per request; the server's CPU is
// not included. req/batch shows how the requests were merged.
func BenchmarkBatch(b *testing.B) {
	for _, bc := range []struct {
		clients int
		gather  time.Duration
	}{{16, 0}, {16, DefaultConfig().GatherWait}, {256, 0}, {256, DefaultConfig().GatherWait}} {
		b.Run(fmt.Sprintf("clients=%d/gather=%v", bc.clients, bc.gather), func(b *testing.B) {
			f := newFixture(b, "BIGINT", map[string]int64{"hot": 1 << 60}, func(c *Config) {
				c.hooks.executed = nil
				c.GatherWait = bc.gather
			})
			req := f.text(b, "UPDATE inv SET stock = stock - 1 WHERE sku = 'hot' AND stock >= 1", 1)
			ctx := context.Background()
			var ids atomic.Uint32
			hotParallelism(b, bc.clients)
			b.ReportAllocs()
			cpu := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := req
				req.ConnID = ids.Add(1)
				for pb.Next() {
					if _, err := f.m.Do(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			s := f.m.Stats()
			b.ReportMetric(float64(s.Requests)/float64(max(1, s.Batches)), "req/batch")
		})
	}
}

// BenchmarkDirect is the baseline: the same statement as direct autocommit
// UPDATEs on the hot row from 256 goroutines, without ledger or proxy.
func BenchmarkDirect(b *testing.B) {
	f := newFixture(b, "BIGINT", map[string]int64{"hot": 1 << 60}, nil)
	db, err := sql.Open("mysql", f.db.DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(256)
	db.SetMaxIdleConns(256)
	hotParallelism(b, 256)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Exec("UPDATE inv SET stock = stock - 1 WHERE sku = 'hot' AND stock >= 1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLone measures one client: every request is a lone batch (one
// round trip); ns/op is its latency, cpu-ns/op this process's CPU.
func BenchmarkLone(b *testing.B) {
	f := newFixture(b, "BIGINT", map[string]int64{"hot": 1 << 60}, func(c *Config) { c.hooks.executed = nil })
	req := f.text(b, "UPDATE inv SET stock = stock - 1 WHERE sku = 'hot' AND stock >= 1", 1)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.m.Do(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}
