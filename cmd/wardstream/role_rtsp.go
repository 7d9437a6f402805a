package main

import (
	"fmt"

	"github.com/wardstream/wardstream/internal/runtime"
)

// newRTSPRole builds the rtsp role. Owned by the work on issue 6.
func newRTSPRole(_ *env) (runtime.Role, error) {
	return nil, fmt.Errorf("the rtsp role is not part of this build yet (issue 6)")
}
