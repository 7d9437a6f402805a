package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureStderr runs f with os.Stderr redirected and returns what it wrote.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	defer func() { os.Stderr = old }()
	f()
	w.Close()
	os.Stderr = old
	return <-done
}

// TestRunDoesNotLogMQTTCredentials: `run` logs the MQTT broker URL
// as configured ("wardstream starting ... mqtt=..."); a URL with userinfo
// (mqtt.url or WARDSTREAM_MQTT_URL) puts the broker password in the log.
// The mqtt connector itself logs the URL redacted.
func TestRunDoesNotLogMQTTCredentials(t *testing.T) {
	t.Setenv("WARDSTREAM_MQTT_URL", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(cfg, []byte("tenant: t\nmqtt:\n  url: tcp://ward:S3cretPw@127.0.0.1:1883\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An address already in use makes the group fail right after the
	// start line is logged, before any role runs.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var code int
	var stderr bytes.Buffer
	logs := captureStderr(t, func() {
		code = run(context.Background(), []string{"run", "--roles", "processors", "--config", cfg, "--listen", busy.Addr().String()}, &stderr)
	})
	if code == 0 {
		t.Fatalf("expected the busy listener to fail the run: %s", stderr.String())
	}
	if strings.Contains(logs, "S3cretPw") || strings.Contains(stderr.String(), "S3cretPw") {
		t.Fatalf("the MQTT password reached the logs:\n%s", logs)
	}
}

// TestTokenSubFlag: README's Commands section documented
// `wardstream token --sub U --role R`, and the command has no --sub flag;
// it documents --user now, and the flags it names must work.
func TestTokenSubFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("wardstream token --user U --role R")) {
		t.Fatal("README's Commands section does not document `wardstream token --user U --role R`")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(cfg, []byte("tenant: hosp-t\napi:\n  auth: {demo_key_file: "+filepath.Join(dir, "k.pem")+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	var code int
	captureStdout(t, func() {
		code = run(context.Background(), []string{"token", "--config", cfg, "--user", "alice", "--role", "analyst"}, &stderr)
	})
	if code != 0 {
		t.Fatalf("README's `wardstream token --user U --role R`: exit %d: %s", code, stderr.String())
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	os.Stdout = old
	return <-done
}

// TestValidateLinesInRoleSections: a problem in a role section is
// reported at its line in the file. config.Section re-marshals the section
// and shifts the line numbers by the section's start, but re-marshalling
// drops blank lines (and comment-only lines' spacing), so every problem
// after a blank line inside a section points at the wrong line.
func TestValidateLinesInRoleSections(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"tenant: a\nsinks:\n  clickhouse:\n    group: g\n\n    bogus: 1\n", "line 6: sinks.clickhouse: unknown field bogus"},
		{"tenant: a\napi:\n  auth: {demo_key_file: k.pem}\n\n  # the listener\n\n  lisen: x\n", "line 7: api: unknown field lisen"},
	} {
		res := validateTopology([]byte(c.yaml))
		if len(res.problems) != 1 || res.problems[0].String() != c.want {
			t.Errorf("%q: problems %v, want [%s]", c.yaml, res.problems, c.want)
		}
	}
}

// TestValidateReportsEverythingAfterABadDuration: validate "checks a
// topology fully" and reports every problem in one run, but a bad duration
// aborts YAML decoding (Duration.UnmarshalYAML returns a plain error, not
// a *yaml.TypeError), so every problem after it in the file is missed.
func TestValidateReportsEverythingAfterABadDuration(t *testing.T) {
	res := validateTopology([]byte("drain_timeout: 5\nkafka:\n  compression: rar\n  bogus: 1\ntenant: ''\n"))
	var got []string
	for _, p := range res.problems {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{`line 1: `, "line 3: kafka.compression", "line 4: unknown field bogus", "line 5: tenant"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q; got:\n%s", want, all)
		}
	}
}
