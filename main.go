// Command sealpost is the Sealpost secure messaging appliance: web interface,
// SMTP gateway, encrypted store and certificates in one binary.
//
// Exit codes: 0 success, 1 failure, 2 usage or configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sealpost/sealpost/appliance"
	"github.com/sealpost/sealpost/appliance/config"
	"github.com/sealpost/sealpost/appliance/ctl"
	"github.com/sealpost/sealpost/appliance/fault"
	"github.com/sealpost/sealpost/appliance/keyring"
)

// version is stamped at build time: -ldflags "-X main.version=…".
var version = "dev"

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one subcommand: its words, usage line, help and action.
type command struct {
	name    string // one or two words, e.g. "config check"
	args    string // what follows the name in the usage line
	summary string
	help    string
	run     func(env *environment, args []string) int
}

// environment is what a command may touch, so tests can run commands in
// process.
type environment struct {
	stdout, stderr io.Writer
	environ        []string
	ctx            context.Context
}

func commands() []command {
	return []command{
		{"serve", "[--config FILE]", "Run the appliance.",
			"Starts the web interface, the store and the certificates with the boot configuration\n" +
				"(built-in defaults, then FILE or /etc/sealpost/sealpost.toml, then SEALPOST_*\n" +
				"environment variables). While setup is not finished it prints the setup link with\n" +
				"its one-time token. Stops gracefully on SIGTERM or SIGINT.", runServe},
		{"config check", "[--config FILE] [--describe]", "Validate the boot configuration.",
			"Loads the configuration as serve would and reports every invalid value, one per line,\n" +
				"naming its key; exits 2 when there is any. With --describe, prints the effective\n" +
				"configuration as a commented TOML file (with no file and no environment: the sample).", runConfigCheck},
		{"settings get", "[--config FILE] [KEY]", "Show run-time settings.",
			"Prints the value of KEY, or every setting as KEY = VALUE. Secrets show only (set) or\n" +
				"(not set). Reaches the running server through its control socket, or opens the\n" +
				"store itself when no server runs.", runControl("settings get")},
		{"settings set", "[--config FILE] KEY VALUE", "Change a run-time setting.",
			"Validates VALUE as the admin console does, saves it and records the change in the\n" +
				"audit trail. Lists take commas: organization.domains example.org,example.com.\n" +
				"Exits 2 with the reason when the value is invalid; nothing is saved then.", runControl("settings set")},
		{"mail test", "[--config FILE] --to ADDRESS [--queue]", "Send a test notification now.",
			"Sends a branded test message through the configured outbound path (mail.* settings:\n" +
				"the relay, or the recipient's MX) at once and prints what the peer answered. Exits 1\n" +
				"when the peer refuses it or cannot be reached, 2 when outbound mail is not\n" +
				"configured. With --queue, puts it in the outbound queue instead and prints its id.", runControl("mail test")},
		{"mail dkim", "[--config FILE] [--domain DOMAIN]", "Show the DKIM records to publish.",
			"Prints the DNS TXT records of the appliance's DKIM keys (Ed25519 and RSA-2048, made on\n" +
				"first use and kept in the encrypted store) for the domain of mail.from_address.\n" +
				"Once they are published, turn signing on with: sealpost settings set mail.dkim_sign true", runControl("mail dkim")},
		{"queue list", "[--config FILE]", "Show the outbound queue.",
			"Lists notifications that wait or failed: id, state, kind, recipient domain, attempts,\n" +
				"next attempt and last error. Never content or full addresses.", runControl("queue list")},
		{"queue retry", "[--config FILE] ID", "Try a queued or failed notification now.",
			"Makes the notification due at once; a failed one goes back into the queue.", runControl("queue retry")},
		{"queue drop", "[--config FILE] ID", "Remove a notification from the queue.",
			"Deletes a queued or failed notification and its message. The change is audited.", runControl("queue drop")},
		{"store compact", "[--config FILE]", "Rewrite the store, dropping deleted records.",
			"Compacts the encrypted store so that deleted and overwritten records, such as the keys of\n" +
				"recalled and expired messages, are gone from its files too, not only unreachable.\n" +
				"Writes pause for a moment while it starts. Prints the store's size before and after;\n" +
				"the run is audited.", runControl("store compact")},
		{"setup", "[--config FILE] --answers FILE", "Run first-run setup from an answers file.",
			"Applies the wizard's answers (TOML: [organization], [branding], [admin], [mail], [inbound])\n" +
				"with the same checks as the web wizard: every problem is listed with its key and\n" +
				"nothing is saved unless all is valid (exit 2). Afterwards the web wizard is gone.", runSetup},
		{"admin reset-password", "[--config FILE] EMAIL", "Print a one-time password-reset link.",
			"Break-glass for a locked-out administrator: makes a reset link for the user with EMAIL\n" +
				"and prints it instead of mailing it. The link works once; the action is audited.", runControl("admin reset-password")},
		{"version", "", "Print the version.", "Prints the version, the Go version and the platform.", runVersion},
		{"help", "[COMMAND]", "Show help for a command.", "Without COMMAND, lists the commands.", runHelp},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	env := &environment{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ(), ctx: ctx}
	code := run(env, os.Args[1:])
	stop()
	os.Exit(code)
}

// run finds the command that the arguments name and runs it.
func run(env *environment, args []string) int {
	if len(args) == 0 {
		writeUsage(env.stderr)
		return exitUsage
	}
	cmd, rest, ok := find(args)
	if !ok {
		fmt.Fprintf(env.stderr, "sealpost: unknown command %q\n\n", strings.Join(args, " "))
		writeUsage(env.stderr)
		return exitUsage
	}
	return cmd.run(env, rest)
}

func find(args []string) (command, []string, bool) {
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

func writeUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sealpost COMMAND [ARGUMENTS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'sealpost help COMMAND' for details. Exit codes: 0 ok, 1 failure, 2 usage or configuration error.")
}

func writeCommandHelp(w io.Writer, c command) {
	fmt.Fprintf(w, "Usage: sealpost %s %s\n\n%s\n\n%s\n", c.name, c.args, c.summary, c.help)
}

// flags parses a command's flags; on a usage error it prints the command's
// help and returns false.
func flags(env *environment, name string, args []string, define func(*flag.FlagSet)) bool {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		if errors.Is(err, flag.ErrHelp) {
			c, _, _ := find(strings.Fields(name))
			writeCommandHelp(env.stdout, c)
			return false
		}
		fmt.Fprintf(env.stderr, "sealpost %s: %v\n", name, err)
		fmt.Fprintf(env.stderr, "Run 'sealpost help %s' for usage.\n", name)
		return false
	}
	return true
}

func runHelp(env *environment, args []string) int {
	if len(args) == 0 {
		writeUsage(env.stdout)
		return exitOK
	}
	c, rest, ok := find(args)
	if !ok || len(rest) > 0 {
		fmt.Fprintf(env.stderr, "sealpost help: unknown command %q\n", strings.Join(args, " "))
		return exitUsage
	}
	writeCommandHelp(env.stdout, c)
	return exitOK
}

func runVersion(env *environment, args []string) int {
	if !flags(env, "version", args, func(*flag.FlagSet) {}) {
		return exitUsage
	}
	fmt.Fprintf(env.stdout, "sealpost %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// loadConfig loads and validates; on failure it prints every error and
// returns false.
func loadConfig(env *environment, file string) (config.Config, bool) {
	cfg, err := config.Load(config.Source{File: file, Explicit: file != "", Environ: env.environ})
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintf(env.stderr, "config: %v\n", e)
			}
		} else {
			fmt.Fprintf(env.stderr, "config: %v\n", err)
		}
		return cfg, false
	}
	return cfg, true
}

func runConfigCheck(env *environment, args []string) int {
	var file string
	var describe bool
	if !flags(env, "config check", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "config", "", "configuration file")
		fs.BoolVar(&describe, "describe", false, "print the configuration as commented TOML")
	}) {
		return exitUsage
	}
	cfg, ok := loadConfig(env, file)
	if !ok {
		return exitUsage
	}
	if describe {
		if err := config.Describe(env.stdout, cfg); err != nil {
			fmt.Fprintf(env.stderr, "sealpost: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintln(env.stdout, "configuration is valid")
	return exitOK
}

func runServe(env *environment, args []string) int {
	var file string
	if !flags(env, "serve", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "config", "", "configuration file")
	}) {
		return exitUsage
	}
	cfg, ok := loadConfig(env, file)
	if !ok {
		return exitUsage
	}
	log := appliance.NewLogger(env.stdout, cfg.Log.Level)
	app, err := appliance.Open(env.ctx, cfg, appliance.Options{Version: version, Logger: log, Stdout: env.stdout})
	if err != nil {
		log.Error().Err(err).Msg("start failed")
		fmt.Fprintf(env.stderr, "sealpost: %s\n", startMessage(err))
		return exitFailure
	}
	defer app.Close()
	if err := app.Serve(env.ctx); err != nil {
		log.Error().Err(err).Msg("serve failed")
		fmt.Fprintf(env.stderr, "sealpost: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// startMessage is what the operator reads when start-up fails: the safe
// message of a fault (which says what to do), or the whole error.
func startMessage(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind != fault.Internal {
		return fe.Message
	}
	return err.Error()
}

// runControl returns the action of a command that runs against the store:
// through the running server's control socket, or, with no server, in this
// process.
// runSetup passes the answers file to the server (or the offline store)
// with an absolute path, since the server's working directory may differ.
func runSetup(env *environment, args []string) int {
	for i, a := range args {
		if (a == "--answers" || a == "-answers") && i+1 < len(args) {
			if abs, err := filepath.Abs(args[i+1]); err == nil {
				args[i+1] = abs
			}
		} else if v, ok := strings.CutPrefix(a, "--answers="); ok {
			if abs, err := filepath.Abs(v); err == nil {
				args[i] = "--answers=" + abs
			}
		}
	}
	return runControl("setup")(env, args)
}

func runControl(name string) func(env *environment, args []string) int {
	return func(env *environment, args []string) int {
		file, rest, err := configFlag(args)
		if err != nil {
			fmt.Fprintf(env.stderr, "sealpost %s: %v\nRun 'sealpost help %s' for usage.\n", name, err, name)
			return exitUsage
		}
		cfg, ok := loadConfig(env, file)
		if !ok {
			return exitUsage
		}
		command := append(strings.Fields(name), rest...)
		ctx, cancel := context.WithTimeout(env.ctx, 5*time.Minute)
		defer cancel()
		code, err := ctl.Run(ctx, ctl.SocketPath(cfg.DataDir), command, env.stdout, env.stderr)
		if err == nil {
			return code
		}
		if !errors.Is(err, ctl.ErrNotRunning) {
			fmt.Fprintf(env.stderr, "sealpost: %v\n", err)
			return exitFailure
		}
		// No server and no data: a wrong --config or working directory,
		// not a new appliance to create behind the operator's back.
		if _, err := os.Stat(filepath.Join(cfg.DataDir, keyring.FileName)); errors.Is(err, fs.ErrNotExist) && name != "setup" {
			fmt.Fprintf(env.stderr, "sealpost %s: no Sealpost data in %s and no server running there.\n"+
				"Give the configuration the server uses (--config FILE), or start it once with 'sealpost serve'.\n", name, cfg.DataDir)
			return exitFailure
		}
		log := appliance.NewLogger(env.stderr, "warn")
		app, err := appliance.OpenOffline(ctx, cfg, appliance.Options{Version: version, Logger: log, Stdout: env.stdout})
		if err != nil {
			fmt.Fprintf(env.stderr, "sealpost: %s\n", startMessage(err))
			return exitFailure
		}
		defer app.Close()
		return app.Command(ctx, command, env.stdout, env.stderr)
	}
}

// configFlag takes --config FILE (or --config=FILE) out of args; the rest
// belongs to the command, which parses it where it runs.
func configFlag(args []string) (file string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--config" || a == "-config":
			if i+1 == len(args) {
				return "", nil, errors.New("--config needs a file")
			}
			file = args[i+1]
			i++
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
			file = a[strings.IndexByte(a, '=')+1:]
		default:
			rest = append(rest, a)
		}
	}
	return file, rest, nil
}
