//go:build !sealpost_testclock

package appliance

import "time"

// clock is the appliance's clock: the system's. Test builds (the
// sealpost_testclock tag) replace it with one a test can move.
func clock() func() time.Time { return time.Now }
