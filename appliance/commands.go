package appliance

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/store"
)

// Command runs one CLI command against the open appliance: in the server,
// when it arrives on the control socket, or in the CLI's own process when
// no server runs. It returns the exit code: 0 ok, 1 failure, 2 usage.
func (a *App) Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := strings.Join(args[:min(2, len(args))], " ")
	rest := args[min(2, len(args)):]
	if len(args) > 0 && args[0] == "setup" {
		return a.setupAnswers(ctx, args[1:], stdout, stderr)
	}
	switch name {
	case "admin reset-password":
		return a.adminResetPassword(ctx, rest, stdout, stderr)
	case "settings get":
		return a.settingsGet(rest, stdout, stderr)
	case "settings set":
		return a.settingsSet(ctx, rest, stdout, stderr)
	case "mail test":
		return a.mailTest(ctx, rest, stdout, stderr)
	case "mail dkim":
		return a.mailDKIM(ctx, rest, stdout, stderr)
	case "queue list":
		return a.queueList(rest, stdout, stderr)
	case "queue retry":
		return a.queueChange(ctx, "retry", rest, stdout, stderr)
	case "queue drop":
		return a.queueChange(ctx, "drop", rest, stdout, stderr)
	case "store compact":
		return a.storeCompact(ctx, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "unknown command %q\n", name)
	return 2
}

// storeCompact drops deleted records from the store's files (the keys of
// recalled messages among them) and says how the size changed.
func (a *App) storeCompact(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: sealpost store compact")
		return 2
	}
	tree0, vlog0 := a.store.Size()
	if err := a.store.Compact(); err != nil {
		return a.fail(stderr, err)
	}
	tree1, vlog1 := a.store.Size()
	err := a.store.Update(ctx, func(tx *store.Tx) error {
		return a.audit.Append(tx, audit.Event{Actor: "cli", Action: "store.compact", Object: "store",
			Detail: map[string]string{"before": fmt.Sprint(tree0 + vlog0), "after": fmt.Sprint(tree1 + vlog1)}})
	})
	if err != nil {
		return a.fail(stderr, err)
	}
	fmt.Fprintf(stdout, "Store compacted: tables %s → %s, value log %s → %s.\n", sizeText(tree0), sizeText(tree1), sizeText(vlog0), sizeText(vlog1))
	return 0
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (a *App) settingsGet(args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 {
		fmt.Fprintln(stderr, "usage: sealpost settings get [KEY]")
		return 2
	}
	s, err := settings.Read(a.store)
	if err != nil {
		return a.fail(stderr, err)
	}
	if len(args) == 1 {
		value, err := settings.Get(s, args[0])
		if err != nil {
			return a.fail(stderr, err)
		}
		fmt.Fprintln(stdout, value)
		return 0
	}
	for _, kv := range settings.All(s) {
		fmt.Fprintf(stdout, "%s = %s\n", kv[0], kv[1])
	}
	return 0
}

func (a *App) settingsSet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: sealpost settings set KEY VALUE")
		return 2
	}
	if err := settings.Set(ctx, a.store, a.audit, "cli", settings.Change{Key: args[0], Value: args[1]}); err != nil {
		return a.fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s changed\n", args[0])
	return 0
}

// fail prints a command's error: the safe message for the user (exit 2 when
// the input was wrong), the cause to the log.
func (a *App) fail(stderr io.Writer, err error) int {
	if fault.KindOf(err) == fault.Invalid {
		fmt.Fprintln(stderr, fault.Message(err))
		return 2
	}
	a.log.Error().Err(err).Msg("command failed")
	fmt.Fprintf(stderr, "%v\n", err)
	return 1
}
