package message

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkIntake16: secure messages from one sender, each to a new
// recipient (invited), 8 goroutines per CPU at once, as the gateway hands
// them over.
func BenchmarkIntake16(b *testing.B) {
	e := newEnv(b)
	ann := e.admin // administrators have no invitation quota
	e.set(b, "security.invitation_days", "14")
	body := strings.Repeat("Results follow, line by line.\n", 320)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := e.svc.Intake(context.Background(), Incoming{SenderID: ann.ID, To: []string{fmt.Sprintf("r%d@outside.test", i)},
				Subject: "Results", Text: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
