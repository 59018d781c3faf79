//go:build !linux

package appliance

// freeSpace cannot tell on this system; the gateway then does not check.
func freeSpace(string) (uint64, bool) { return 0, false }
