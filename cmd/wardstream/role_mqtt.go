package main

import (
	"fmt"

	"github.com/wardstream/wardstream/internal/runtime"
)

// newMQTTRole builds the mqtt role. Owned by the work on issue 3.
func newMQTTRole(_ *env) (runtime.Role, error) {
	return nil, fmt.Errorf("the mqtt role is not part of this build yet (issue 3)")
}
