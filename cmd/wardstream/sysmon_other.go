//go:build !unix

package main

import "errors"

// reexec is not available here: process.keep_sysmon_awake needs exec(2).
func reexec([]string) error {
	return errors.New("process.keep_sysmon_awake needs a Unix system")
}
