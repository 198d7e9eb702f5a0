package binlog

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// childEnv, when set, makes the test binary run a consumer from the JSON
// configuration in the variable instead of the tests, until killed.
const childEnv = "HOTROW_BINLOG_CHILD"

func runChild() int {
	var cfg Config
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	c, err := NewConsumer(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// child is a consumer running in a child process.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

// startChild runs the consumer of f.cfg in a child process, logging to
// a file in dir.
func (f *feedFixture) startChild(t *testing.T, dir string, round int) *child {
	t.Helper()
	cfg, err := json.Marshal(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, fmt.Sprintf("child-%d.log", round)))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait(); logFile.Close() }()
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

func TestKill9(t *testing.T) {
	f := newFeedFixture(t, "INT")
	f.cfg.SinkBatch = 16 // many acknowledgements and checkpoints to land between
	l := newLoad(t, f, 3, 1_000_000)
	dir := t.TempDir()
	round := 0
	c := f.startChild(t, dir, round)
	t.Cleanup(func() { c.kill() })
	f.waitCheckpoint(t)

	stop := make(chan struct{})
	killed := make(chan int)
	go func() {
		kills := 0
		defer func() { killed <- kills }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(50+rand.IntN(300)) * time.Millisecond):
			}
			c.kill()
			kills++
			round++
			c = f.startChild(t, dir, round)
		}
	}()
	direct := l.run(t, 8, 4, 250)
	close(stop)
	kills := <-killed
	want := l.ledgerRows(t) + direct
	evs := f.waitIDs(t, want)
	l.check(t, evs, direct)
	t.Logf("consumer killed %d times", kills)
	if kills < 3 {
		t.Errorf("only %d kills: the load ended too soon to test much", kills)
	}
}
