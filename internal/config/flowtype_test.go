package config_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/internal/config"
)

// TestFlowMapTypeErrorNamesItsPath: yaml.v3 quotes a value of the
// wrong type with backticks, not strconv.Quote, so withPaths falls back to
// the line's last value and names the wrong key.
func TestFlowMapTypeErrorNamesItsPath(t *testing.T) {
	_, err := config.Parse([]byte("kafka: {partitions: many, compression: lz4}\n"))
	if err == nil || !strings.Contains(err.Error(), "kafka.partitions") {
		t.Fatalf("error %v, want it to name kafka.partitions", err)
	}
}
