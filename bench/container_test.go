package bench

import (
	"context"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Container tests and benchmarks run the database with testcontainers-go.
//
//	HOTROW_BENCH_IMAGE   image (default DefaultImage, built by
//	                     scripts/build-mariadb-image.sh; e.g. mariadb:11.4)
//	HOTROW_BENCH_PULL=1  the image may be pulled from a registry
//	HOTROW_TESTCONTAINERS=1
//	                     a missing Docker engine or image fails instead of
//	                     skipping (set it in CI, with CI=true)
//
//	go test -run TestContainer ./bench/
//	go test -run '^$' -bench Container -benchtime 3s ./bench/

// containerSides starts a database container and a proxy child in front of
// it, both removed at cleanup, or skips when Docker or the image is missing.
func containerSides(tb testing.TB) (direct, proxy Target, dbPID int) {
	tb.Helper()
	ctx := context.Background()
	image := cmpOr(os.Getenv("HOTROW_BENCH_IMAGE"), DefaultImage)
	if err := CheckImage(ctx, image, os.Getenv("HOTROW_BENCH_PULL") == "1"); err != nil {
		if os.Getenv("HOTROW_TESTCONTAINERS") == "1" {
			tb.Fatalf("testcontainers: %v", err)
		}
		tb.Skipf("testcontainers: %v (HOTROW_TESTCONTAINERS=1 makes this a failure)", err)
	}
	c, err := StartContainer(ctx, image, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Terminate(context.Background()); err != nil {
			tb.Errorf("terminate container: %v", err)
		}
	})
	p, err := StartProxy(ctx, ProxyOptions{
		Binary: buildHotrow(tb), Backend: c.Addr, User: c.User, Password: c.Password,
		HotRules: []string{HotRule(DefaultDatabase)},
	}, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return Target{DSN: c.DSN()}, Target{DSN: p.DSN(c.User, c.Password), PID: p.PID()}, c.PID
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestContainerShort is the short containerised bench CI runs.
func TestContainerShort(t *testing.T) {
	direct, proxy, pid := containerSides(t)
	scs, err := LookupScenarios("hot,flash-sale")
	if err != nil {
		t.Fatal(err)
	}
	scs[1].Stock = 20 // sells out within the window even on a loaded machine
	rep := runAndCheck(t, Config{
		Direct: direct, Proxy: proxy, DBPID: pid, Scenarios: scs, Clients: []int{16},
		Duration: time.Second, Warmup: 300 * time.Millisecond, Database: DefaultDatabase, Log: testLogger(t),
	})
	if pid != 0 && rep.Cells[0].Direct.CPU.DB < 0 {
		t.Error("container server CPU not measured though its pid is known")
	}
}

// BenchmarkContainer measures each scenario's statement, direct and through
// the proxy, at 64 concurrent clients (b.RunParallel), and checks the
// stock afterwards. Reports ops/s and p99 besides ns/op.
func BenchmarkContainer(b *testing.B) {
	direct, proxy, _ := containerSides(b)
	ctx := context.Background()
	admin, err := openAdmin(ctx, direct.DSN, DefaultDatabase)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	const clients = 64
	scs, err := LookupScenarios("hot,hot-prepared,zipf,cold,mixed")
	if err != nil {
		b.Fatal(err)
	}
	for _, sc := range scs {
		for _, side := range []struct {
			name string
			t    Target
		}{{Direct, direct}, {Proxy, proxy}} {
			b.Run(sc.Name+"/"+side.name, func(b *testing.B) {
				s, err := startSide(ctx, admin, side.t.DSN, DefaultDatabase, &sc, clients)
				if err != nil {
					b.Fatal(err)
				}
				defer s.close()
				s.measuring.Store(true)
				var (
					mu   sync.Mutex
					hist Histogram
					errs int64
				)
				b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
				b.ReportAllocs()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					w := s.newWorker()
					for pb.Next() {
						w.once(ctx)
					}
					mu.Lock()
					defer mu.Unlock()
					hist.Merge(&w.hist)
					for _, n := range w.errors {
						errs += n
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(hist.Count())/time.Since(start).Seconds(), "ops/s")
				b.ReportMetric(float64(hist.Quantile(0.99))/float64(time.Millisecond), "p99-ms")
				if errs > 0 {
					b.Errorf("%d statements failed", errs)
				}
				if bad, err := sc.check(ctx, admin, s.tally); err != nil || len(bad) > 0 {
					b.Fatalf("check: %v %v", bad, err)
				}
			})
		}
	}
}
