package appliance

import (
	"fmt"
	"net"
	"os"
)

// notifySystemd sends state to systemd's notification socket (sd_notify), so
// that a Type=notify unit is reported started only once the listeners are up.
// Outside systemd (no NOTIFY_SOCKET) it does nothing.
func notifySystemd(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract socket
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("dial NOTIFY_SOCKET: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("write NOTIFY_SOCKET: %w", err)
	}
	return nil
}
