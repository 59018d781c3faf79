//go:build sealpost_testclock

package appliance

import (
	"os"
	"strings"
	"time"
)

// clock, in test builds only, adds the duration written in the file named
// by SEALPOSTTEST_CLOCK_FILE (for example "72h") to the system's clock,
// reread on every call, so that a browser test on the real binary can move
// time forward past an expiry without sleeping. Release builds have no
// such hook.
func clock() func() time.Time {
	file := os.Getenv("SEALPOSTTEST_CLOCK_FILE")
	if file == "" {
		return time.Now
	}
	return func() time.Time {
		data, err := os.ReadFile(file)
		if err != nil {
			return time.Now()
		}
		d, err := time.ParseDuration(strings.TrimSpace(string(data)))
		if err != nil {
			return time.Now()
		}
		return time.Now().Add(d)
	}
}
