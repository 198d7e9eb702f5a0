package binlog

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestJSONLSink(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "o.jsonl")
	// A line a crash cut short stays alone on its line.
	if err := os.WriteFile(path, []byte(`{"id":"a"}`+"\n"+`{"id":"b","ki`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSink(ctx, "jsonl:"+path, SinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "jsonl:"+path {
		t.Errorf("name %q", s.Name())
	}
	if err := s.Deliver(ctx, []Message{{ID: "b", Data: []byte(`{"id":"b"}`)}, {ID: "c", Data: []byte(`{"id":"c"}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	got, _ := os.ReadFile(path)
	want := `{"id":"a"}` + "\n" + `{"id":"b","ki` + "\n" + `{"id":"b"}` + "\n" + `{"id":"c"}` + "\n"
	if string(got) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", got, want)
	}
	if err := s.Deliver(ctx, []Message{{ID: "d", Data: []byte("{}")}}); err == nil {
		t.Fatal("Deliver after Close succeeded")
	}
	for _, bad := range []string{"jsonl:", "stdout:x", "nope:x"} {
		if _, err := OpenSink(ctx, bad, SinkOptions{}); err == nil {
			t.Errorf("OpenSink(%q) succeeded", bad)
		}
	}
}
