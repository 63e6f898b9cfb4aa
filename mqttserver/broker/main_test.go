package broker

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the mqttserver binary mustBuild made once the tests have run.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
