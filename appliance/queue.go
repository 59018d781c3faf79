package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/store"
)

// queueList shows queued and failed notifications: ids, destination
// domain, attempts, next attempt and last error, never content.
func (a *App) queueList(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: sealpost queue list")
		return 2
	}
	const limit = 1000
	items, err := a.queue.List(limit)
	if err != nil {
		return a.fail(stderr, err)
	}
	if len(items) == 0 {
		fmt.Fprintln(stdout, "The outbound queue is empty.")
		return 0
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tKIND\tDOMAIN\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	for _, it := range items {
		next := it.NextAttempt.Local().Format(time.DateTime)
		if it.State != "queued" {
			next = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.State, it.Kind, it.Domain(), it.Attempts, next, it.LastError)
	}
	w.Flush()
	if len(items) == limit {
		fmt.Fprintf(stdout, "(the first %d shown)\n", limit)
	}
	return 0
}

// queueChange retries or drops one notification, and audits it.
func (a *App) queueChange(ctx context.Context, action string, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: sealpost queue %s ID\n", action)
		return 2
	}
	id := args[0]
	var err error
	if action == "retry" {
		err = a.queue.Retry(ctx, id)
	} else {
		err = a.queue.Drop(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(stderr, "no notification %s in the queue\n", id)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	err = a.store.Update(ctx, func(tx *store.Tx) error {
		return a.audit.Append(tx, audit.Event{Actor: "cli", Action: "mail.queue." + action, Object: "mail/" + id})
	})
	if err != nil {
		return a.fail(stderr, err)
	}
	if action == "retry" {
		fmt.Fprintf(stdout, "Notification %s will be tried again now.\n", id)
	} else {
		fmt.Fprintf(stdout, "Notification %s dropped.\n", id)
	}
	return 0
}
