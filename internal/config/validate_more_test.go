package config

import (
	"strings"
	"testing"
)

// A negative kafka.linger, a clickhouse.dial_timeout of 0s or below and a
// negative kafka.max_buffered_bytes were accepted: Validate checked
// neither, and the clients got values they cannot use (a dial that times
// out at once).
func TestInvalidDurationsAndSizesAreReported(t *testing.T) {
	for doc, path := range map[string]string{
		"kafka:\n  linger: -5ms\n":           "kafka.linger",
		"clickhouse:\n  dial_timeout: 0s\n":  "clickhouse.dial_timeout",
		"clickhouse:\n  dial_timeout: -1s\n": "clickhouse.dial_timeout",
		"kafka:\n  max_buffered_bytes: -1\n": "kafka.max_buffered_bytes",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), path+":") {
			t.Errorf("%q: error %v, want one naming %s", doc, err, path)
		}
	}
}
