//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// reexec replaces this process with a fresh run of the same executable,
// arguments and pid, under environ. It returns only on failure.
func reexec(environ []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the executable: %w", err)
	}
	if err := syscall.Exec(exe, os.Args, environ); err != nil {
		return fmt.Errorf("exec %s: %w", exe, err)
	}
	return nil
}
