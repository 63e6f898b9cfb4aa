//go:build race

package tests

// raceDetector tells tests that need more goroutines than the race detector allows to skip.
const raceDetector = true
