package mailer

import (
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// ConnCache keeps connections to the relay open between deliveries, as
// Postfix's connection cache does: a burst of notifications then costs one
// TCP and TLS handshake per connection instead of one per message. A
// connection is used again after RSET only while it is young and idle only
// briefly; one that fails is closed and never goes back. The zero value is
// not usable; NewConnCache makes one.
type ConnCache struct {
	mu     sync.Mutex
	idle   map[string][]*cachedConn
	closed bool

	// MaxIdle bounds the idle connections kept per relay.
	MaxIdle int
	// IdleTime closes a connection that waited this long for a message.
	IdleTime time.Duration
	// MaxAge and MaxUses stop reusing a connection after this long or
	// this many messages (a relay may close long sessions itself).
	MaxAge  time.Duration
	MaxUses int
}

// NewConnCache returns a cache with Postfix-like limits: up to 16 idle
// connections per relay, each idle at most 10 seconds, reused for at most
// 5 minutes and 100 messages.
func NewConnCache() *ConnCache {
	return &ConnCache{idle: map[string][]*cachedConn{}, MaxIdle: 16, IdleTime: 10 * time.Second,
		MaxAge: 5 * time.Minute, MaxUses: 100}
}

type cachedConn struct {
	c     *smtp.Client
	raw   net.Conn // the TCP connection, for deadlines
	born  time.Time
	uses  int
	timer *time.Timer // closes it when idle too long
}

// take returns an idle connection for key, or nil.
func (cc *ConnCache) take(key string) *cachedConn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for list := cc.idle[key]; len(list) > 0; list = cc.idle[key] {
		c := list[len(list)-1]
		cc.idle[key] = list[:len(list)-1]
		if c.timer.Stop() { // false: the idle timer is closing it
			return c
		}
	}
	return nil
}

// put keeps c for the next delivery to key, or says goodbye to it.
func (cc *ConnCache) put(key string, c *cachedConn) {
	c.uses++
	cc.mu.Lock()
	keep := !cc.closed && len(cc.idle[key]) < cc.MaxIdle && c.uses < cc.MaxUses && time.Since(c.born) < cc.MaxAge
	if keep {
		c.timer = time.AfterFunc(cc.IdleTime, func() { cc.expire(key, c) })
		cc.idle[key] = append(cc.idle[key], c)
	}
	cc.mu.Unlock()
	if !keep {
		c.quit()
	}
}

// expire closes c after its idle time, unless take got it first.
func (cc *ConnCache) expire(key string, c *cachedConn) {
	cc.mu.Lock()
	list := cc.idle[key]
	for i, x := range list {
		if x == c {
			cc.idle[key] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	cc.mu.Unlock()
	c.quit()
}

// Close says goodbye on every idle connection; connections in use are
// closed when their delivery ends.
func (cc *ConnCache) Close() {
	cc.mu.Lock()
	cc.closed = true
	var all []*cachedConn
	for key, list := range cc.idle {
		for _, c := range list {
			if c.timer.Stop() {
				all = append(all, c)
			}
		}
		delete(cc.idle, key)
	}
	cc.mu.Unlock()
	for _, c := range all {
		c.quit()
	}
}

// Idle counts the idle connections (for tests and metrics).
func (cc *ConnCache) Idle() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	n := 0
	for _, list := range cc.idle {
		n += len(list)
	}
	return n
}

func (c *cachedConn) quit() {
	c.c.CommandTimeout = 5 * time.Second
	_ = c.c.Quit() // sends QUIT and closes
	_ = c.c.Close()
}
