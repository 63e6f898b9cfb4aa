//go:build race

package harness

// raceEnabled builds the programs under test with -race when the tests themselves run with it.
const raceEnabled = true
