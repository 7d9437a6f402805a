package main

import (
	"fmt"

	"github.com/wardstream/wardstream/internal/runtime"
)

// newProcessorsRole builds the processors role. Owned by the work on issue 4.
func newProcessorsRole(_ *env) (runtime.Role, error) {
	return nil, fmt.Errorf("the processors role is not part of this build yet (issue 4)")
}
