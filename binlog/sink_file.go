package binlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

func init() {
	sinkKinds["stdout"] = func(_ context.Context, arg string, _ SinkOptions) (Sink, error) {
		if arg != "" {
			return nil, fmt.Errorf("sink stdout takes no argument (got %q)", arg)
		}
		return &lineSink{name: "stdout", w: os.Stdout}, nil
	}
	sinkKinds["jsonl"] = func(_ context.Context, path string, _ SinkOptions) (Sink, error) {
		if path == "" {
			return nil, errors.New("sink jsonl: want jsonl:PATH")
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("sink jsonl: %w", err)
		}
		if err := endLine(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("sink jsonl: %w", err)
		}
		return &lineSink{name: "jsonl:" + path, w: f, file: f}, nil
	}
}

// lineSink writes one JSON line per message: the stdout sink, and the
// jsonl sink, which appends to a file and fsyncs it before acknowledging.
type lineSink struct {
	name string

	mu     sync.Mutex
	w      io.Writer // guarded by mu
	file   *os.File  // guarded by mu; nil for stdout
	buf    []byte    // guarded by mu
	closed bool      // guarded by mu
}

func (s *lineSink) Name() string { return s.name }

// Deliver writes msgs as lines in one write, then syncs a file.
func (s *lineSink) Deliver(ctx context.Context, msgs []Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sink %s: closed", s.name)
	}
	s.buf = s.buf[:0]
	for i := range msgs {
		s.buf = append(s.buf, msgs[i].Data...)
		s.buf = append(s.buf, '\n')
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("sink %s: %w", s.name, err)
	}
	if s.file != nil {
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("sink %s: fsync: %w", s.name, err)
		}
	}
	return nil
}

// Close closes the file; it is idempotent.
func (s *lineSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}

// endLine ends a line left half written by a crash, so the next line
// starts on its own.
func endLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil {
		return err
	}
	if last[0] != '\n' {
		_, err = f.Write([]byte{'\n'})
	}
	return err
}
