package appliance

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/branding"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/setup"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/mailer"
)

// notifier queues the account flows' notifications in their transaction.
type notifier struct{ a *App }

var _ account.Notifier = notifier{}

func (n notifier) Notify(tx *store.Tx, no account.Notice) error {
	_, err := n.queueNotice(tx, mailer.Notification{Kind: mailer.Kind(no.Kind), SenderName: no.SenderName,
		Link: no.Link, Code: no.Code, ValidFor: no.ValidFor}, no.To)
	return err
}

// baseURL is where users reach the portal, for links in mail.
func (a *App) baseURL() string {
	_, port, err := net.SplitHostPort(a.cfg.HTTPS.Listen)
	if bound, ok := a.boundPort.Load().(string); ok {
		port = bound
	}
	if err != nil || port == "443" || port == "" {
		return "https://" + a.hostname()
	}
	return "https://" + net.JoinHostPort(a.hostname(), port)
}

// adminNetworks parses admin.allowed_networks (validated at start).
func (a *App) adminNetworks() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range a.cfg.Admin.AllowedNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p.Masked())
		} else if ip, err := netip.ParseAddr(n); err == nil {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	return out
}

// adminResetPassword is the break-glass command: a one-time reset link,
// printed, not mailed.
func (a *App) adminResetPassword(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: sealpost admin reset-password EMAIL")
		return 2
	}
	link, err := a.accounts.BreakGlassResetLink(ctx, args[0])
	if err != nil {
		if k := fault.KindOf(err); k == fault.NotFound || k == fault.Conflict || k == fault.Invalid {
			fmt.Fprintln(stderr, fault.Message(err))
			return 1
		}
		return a.fail(stderr, err)
	}
	fmt.Fprintf(stdout, "Open this link to choose a new password. It works once, within the reset-link lifetime:\n%s\n", link)
	return 0
}

// setupAnswers runs the wizard from an answers file.
func (a *App) setupAnswers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("answers", "", "answers file")
	if err := fs.Parse(args); err != nil || *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: sealpost setup --answers FILE")
		return 2
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintf(stderr, "cannot read the answers: %v\n", err)
		return 2
	}
	answers, err := setup.ParseAnswers(data)
	if err != nil {
		fmt.Fprintln(stderr, fault.Message(err))
		return 2
	}
	if problems := answers.LoadImages(filepath.Dir(*file)); problems != nil {
		return printProblems(stderr, *file, problems)
	}
	gate := a.setup
	if gate == nil { // no server: the CLI opened the store itself
		if gate, err = setup.Prepare(a.store, a.cfg.DataDir); err != nil {
			return a.fail(stderr, err)
		}
	}
	admin, err := gate.Apply(ctx, a.store, a.audit, a.accounts, answers)
	if problems := setup.AnswersProblems(err); problems != nil {
		return printProblems(stderr, *file, problems)
	}
	if err != nil {
		if fault.KindOf(err) == fault.Conflict {
			fmt.Fprintln(stderr, fault.Message(err))
			return 1
		}
		return a.fail(stderr, err)
	}
	fmt.Fprintf(stdout, "Setup is complete. Sign in at %s/signin as %s.\n", a.baseURL(), admin.Email)
	return 0
}

// printProblems lists what is wrong with an answers file; exit code 2.
func printProblems(stderr io.Writer, file string, problems []setup.Problem) int {
	fmt.Fprintf(stderr, "Setup was not applied; fix these in %s:\n", filepath.Base(file))
	for _, p := range problems {
		fmt.Fprintf(stderr, "  %s: %s\n", p.Key, p.Message)
	}
	return 2
}

// brandImage is the organization's banner or icon, uploaded or drawn.
func (a *App) brandImage(kind branding.Kind) ([]byte, error) {
	var img []byte
	err := a.store.View(func(tx *store.Tx) error {
		s, err := settings.Load(tx)
		if err != nil {
			return err
		}
		img, err = branding.Image(tx, kind, s.Organization.Name, s.Branding.AccentColor)
		return err
	})
	return img, err
}
