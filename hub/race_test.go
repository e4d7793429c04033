//go:build race

package hub

// raceDetector reports whether the tests run with -race, which changes
// goroutine stack sizes (see TestIdleStackAfterHello).
const raceDetector = true
