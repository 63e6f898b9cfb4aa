package limits

import "testing"

func TestCapabilities(t *testing.T) {
	c := DefaultLimits().Capabilities()
	if c.MaximumClientWritesPending != DefaultMaxPendingWrites || c.MaximumPacketSize != DefaultMaxPacketSize {
		t.Errorf("capabilities %+v do not carry the default limits", c)
	}
	if c.MaximumClients <= 0 {
		t.Errorf("max clients 0 must mean no limit, got %d", c.MaximumClients)
	}
	lim := DefaultLimits()
	lim.MaxClients = 10
	if c := lim.Capabilities(); c.MaximumClients != 10 {
		t.Errorf("MaximumClients = %d, want 10", c.MaximumClients)
	}
}
