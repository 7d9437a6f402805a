//go:build !race

package rtsp_test

const raceEnabled = false
