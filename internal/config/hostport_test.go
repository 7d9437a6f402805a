package config

import (
	"strings"
	"testing"
)

// A host:port with white space (" a:9092", or "a:9092 b:9092" written
// for a list) passed as host:port and failed only when dialled.
func TestHostPortWithSpaceIsReported(t *testing.T) {
	for doc, path := range map[string]string{
		"kafka:\n  brokers: [' a:9092']\n":         "kafka.brokers[0]",
		"kafka:\n  brokers: ['a:9092 b:9092']\n":   "kafka.brokers[0]",
		"clickhouse:\n  addr: ['a:9000 b:9000']\n": "clickhouse.addr[0]",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), path+":") {
			t.Errorf("%q: error %v, want one naming %s", doc, err, path)
		}
	}
}
