package main

import (
	"fmt"

	"github.com/wardstream/wardstream/internal/runtime"
)

// newAPIRole builds the api role. Owned by the work on issue 7.
func newAPIRole(_ *env) (runtime.Role, error) {
	return nil, fmt.Errorf("the api role is not part of this build yet (issue 7)")
}
