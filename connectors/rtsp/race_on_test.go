//go:build race

package rtsp_test

// raceEnabled relaxes real-time assertions: the race detector slows
// libavcodec's callers enough that decoding falls behind 25 fps.
const raceEnabled = true
