package smtpd

import (
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
)

// loginServer is the LOGIN mechanism (draft-murchison-sasl-login), which
// go-sasl has only as a client: "Username:", "Password:", base64 each way.
// An initial response is the user name.
type loginServer struct {
	step int
	user string
	auth func(username, password string) error
}

var _ sasl.Server = (*loginServer)(nil)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.user, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// failureWindow is how far back AUTH failures count.
const failureWindow = time.Minute

// failures counts failed AUTH per client address over the last minute,
// across connections.
type failures struct {
	mu sync.Mutex
	m  map[netip.Addr][]time.Time
}

func newFailures() *failures { return &failures{m: map[netip.Addr][]time.Time{}} }

// recent drops what is older than the window; callers hold mu.
func (f *failures) recent(key netip.Addr, now time.Time) []time.Time {
	ts := f.m[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= failureWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(f.m, key)
		return nil
	}
	f.m[key] = ts
	return ts
}

// blocked says whether key has used up its failures.
func (f *failures) blocked(key netip.Addr, now time.Time, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recent(key, now)) >= limit
}

// add records a failure and returns how many are in the window.
func (f *failures) add(key netip.Addr, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.m) > 10000 { // many addresses: forget the ones whose failures expired
		for k := range f.m {
			f.recent(k, now)
		}
	}
	ts := append(f.recent(key, now), now)
	if len(ts) > 1000 { // a limit is far lower; keep the slice bounded
		ts = ts[len(ts)-1000:]
	}
	f.m[key] = ts
	return len(ts)
}
