//go:build sealpost_pprof

package main

// A profiling build (`go build -tags sealpost_pprof`) serves Go's pprof
// handlers on the loopback address in SEALPOSTTEST_PPROF, for measuring
// the appliance under load (the Postfix comparison in `make bench` uses it
// when asked to profile). Release builds have no such listener.

import (
	"net/http"
	_ "net/http/pprof" // registers the handlers on the default mux
	"os"
	"runtime"
)

func init() {
	addr := os.Getenv("SEALPOSTTEST_PPROF")
	if addr == "" {
		return
	}
	runtime.SetBlockProfileRate(int(1e5)) // one sample per 100 µs blocked
	runtime.SetMutexProfileFraction(10)
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
