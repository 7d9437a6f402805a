package config_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/internal/config"
)

// TestBadDurationInFlowMapNamesItsPath: yamlPaths keeps the last scalar
// of a line as the line's path, so in a flow mapping the bad duration is
// named after the key written after it on the same line.
func TestBadDurationInFlowMapNamesItsPath(t *testing.T) {
	_, err := config.Parse([]byte("kafka: {linger: 5, compression: lz4}\n"))
	if err == nil || !strings.Contains(err.Error(), "kafka.linger") {
		t.Fatalf("error %v, want it to name kafka.linger", err)
	}
}
