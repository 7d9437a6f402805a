package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kafka:\n  brokerz: [x:1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(dir, "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("kafka:\n  compression: rar\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no args", nil, 2, "Usage"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"wrong flag", []string{"topics", "list", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"unknown config key", []string{"topics", "list", "--config", bad}, 1, "line 2: unknown field brokerz"},
		{"invalid config field", []string{"topics", "list", "--config", invalid}, 1, "kafka.compression"},
		{"missing config file", []string{"topics", "list", "--config", filepath.Join(dir, "nope.yaml")}, 1, "reading config file"},
		{"tail needs topic", []string{"tail"}, 2, "want a TOPIC"},
		{"tail unknown topic", []string{"tail", "nope"}, 2, "not a catalog topic"},
		{"run unknown role", []string{"run", "--roles", "teleport", "--config", "/dev/null"}, 2, `unknown role "teleport"`},
		{"shadow needs set", []string{"shadow"}, 2, "wardstream shadow set DEVICE"},
		{"shadow needs key=value", []string{"shadow", "set", "pc-1"}, 2, "at least one key=value"},
		{"shadow bad pair", []string{"shadow", "set", "pc-1", "novalue"}, 2, "novalue"},
		{"help", []string{"--help"}, 0, "Commands:"},
		{"command help", []string{"run", "--help"}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tc.wantErr)
			}
			if tc.wantCode != 0 && tc.name != "no args" && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Fatalf("error must be one line, got %q", stderr.String())
			}
		})
	}
}

func TestDefaultTopologyIsValid(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"topics", "list", "--config", "../../deploy/local/topology.yaml"}, &stderr); code != 0 {
		t.Fatalf("default topology rejected: %s", stderr.String())
	}
}
