package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies: the proxy binary links no container, Docker or
// OpenTelemetry code; those belong to hotrow-bench.
func TestLeanDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/testcontainers/", "github.com/docker/", "go.opentelemetry.io/"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, prefix := range forbidden {
			if strings.HasPrefix(pkg, prefix) {
				t.Errorf("cmd/hotrow depends on %s", pkg)
			}
		}
	}
}
