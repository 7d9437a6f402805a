// Package testutil gates integration tests and finds the local real
// services. Integration tests call [Integration] first; it skips unless
// WARDSTREAM_IT=1 (make test sets it after make services).
package testutil

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EnvGate is the variable that enables integration tests.
const EnvGate = "WARDSTREAM_IT"

// Services are the addresses of the real Kafka, ClickHouse and MQTT broker.
type Services struct {
	KafkaBrokers   []string
	ClickHouseAddr string
	MQTTURL        string
	// Root is the repository root (where go.mod is).
	Root string
}

// Integration skips t unless WARDSTREAM_IT=1 and returns the service
// addresses from the environment, else from .local/services.env, else the
// local defaults.
func Integration(t testing.TB) Services {
	t.Helper()
	if os.Getenv(EnvGate) != "1" {
		t.Skipf("integration test: set %s=1 (make test does, after make services)", EnvGate)
	}
	return Addresses()
}

// Addresses returns the service addresses without gating.
func Addresses() Services {
	s := Services{KafkaBrokers: []string{"127.0.0.1:9092"}, ClickHouseAddr: "127.0.0.1:9000", MQTTURL: "tcp://127.0.0.1:1883", Root: RepoRoot()}
	file := map[string]string{}
	if s.Root != "" {
		if f, err := os.Open(filepath.Join(s.Root, ".local", "services.env")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
				if k, v, ok := strings.Cut(line, "="); ok {
					file[k] = strings.Trim(v, `"'`)
				}
			}
			f.Close()
		}
	}
	get := func(k string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return file[k]
	}
	if v := get("WARDSTREAM_KAFKA_BROKERS"); v != "" {
		s.KafkaBrokers = strings.Split(v, ",")
	}
	if v := get("WARDSTREAM_CLICKHOUSE_ADDR"); v != "" {
		s.ClickHouseAddr = v
	}
	if v := get("WARDSTREAM_MQTT_URL"); v != "" {
		s.MQTTURL = v
	}
	return s
}

// RepoRoot walks up from the working directory to the directory holding
// go.mod; "" if none.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Unique returns a name unique to this test run, for topics, groups and
// databases that tests create on the shared real services.
func Unique(t testing.TB, prefix string) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	return strings.ToLower(prefix + "_" + name + "_" + randSuffix())
}
