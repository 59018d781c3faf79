// Package appliance is the composition root: it opens the keyring, the store
// and the certificates, wires the domain packages to the web interface, and
// runs the listeners. It is the only package that knows all the others.
package appliance

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/sealpost/sealpost/appliance/account"
	"github.com/sealpost/sealpost/appliance/audit"
	"github.com/sealpost/sealpost/appliance/certs"
	"github.com/sealpost/sealpost/appliance/config"
	"github.com/sealpost/sealpost/appliance/ctl"
	"github.com/sealpost/sealpost/appliance/keyring"
	"github.com/sealpost/sealpost/appliance/message"
	"github.com/sealpost/sealpost/appliance/policy"
	"github.com/sealpost/sealpost/appliance/prefs"
	"github.com/sealpost/sealpost/appliance/settings"
	"github.com/sealpost/sealpost/appliance/setup"
	"github.com/sealpost/sealpost/appliance/store"
	"github.com/sealpost/sealpost/mailer"
	"github.com/sealpost/sealpost/mailer/smtpd"
	"github.com/sealpost/sealpost/ui"
)

// Options are what the caller gives the appliance besides its configuration.
type Options struct {
	Version string
	Logger  zerolog.Logger
	Stdout  io.Writer // the setup line is printed here; nil means os.Stdout
}

// App is a running appliance.
type App struct {
	cfg      config.Config
	opts     Options
	log      zerolog.Logger
	keys     *keyring.Keyring
	store    *store.Store
	audit    *audit.Trail
	renderer *mailer.Renderer
	queue    *mailer.Queue
	accounts *account.Service
	messages *message.Service
	gateway  *gateway
	// now is the clock; time.Now unless a test build injects one.
	now func() time.Time
	// tlsSessions lets deliveries to the relay resume TLS sessions.
	tlsSessions tls.ClientSessionCache
	// relayConns keeps connections to the relay open between deliveries;
	// relayCAs keeps the relay's CA file parsed while it is unchanged.
	relayConns *mailer.ConnCache
	relayCAs   caFileCache
	// mtaSTS caches the MTA-STS policies of recipient domains for direct
	// delivery.
	mtaSTS   *mailer.MTASTS
	certs    *certs.Manager
	setup    *setup.Gate
	web      *ui.Server
	registry *prometheus.Registry
	serving  atomic.Bool
	// boundPort is the HTTPS port actually listened on (the configured
	// one may be 0), for links in mail.
	boundPort atomic.Value
}

// OpenOffline unlocks the keyring and opens and migrates the store, and no
// more: CLI commands use it when no server is running.
func OpenOffline(ctx context.Context, cfg config.Config, opts Options) (app *App, err error) {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	a := &App{cfg: cfg, opts: opts, log: opts.Logger, registry: prometheus.NewRegistry(), tlsSessions: tls.NewLRUClientSessionCache(64),
		relayConns: mailer.NewConnCache(), mtaSTS: mailer.NewMTASTS(net.DefaultResolver, nil)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.keys, err = keyring.Open(cfg.KeyFile, cfg.DataDir); err != nil {
		return nil, err
	}
	if a.store, err = store.Open(cfg.DataDir, a.keys, store.Options{Logger: a.log.With().Str("component", "store").Logger()}); err != nil {
		return nil, err
	}
	if err = a.store.Migrate(ctx, migrations); err != nil {
		return nil, err
	}
	a.now = clock()
	a.audit = audit.New(a.keys, a.now)
	if a.renderer, err = mailer.NewRenderer(); err != nil {
		return nil, err
	}
	a.queue = mailer.NewQueue(a.store, a.currentSender, a.log.With().Str("component", "mailq").Logger())
	a.accounts, err = account.New(ctx, account.Options{Store: a.store, Audit: a.audit, Notifier: notifier{a},
		Logger: a.log.With().Str("component", "account").Logger(), BaseURL: a.baseURL, Now: a.now})
	if err != nil {
		return nil, err
	}
	if err := a.openMessages(); err != nil {
		return nil, err
	}
	a.gateway = &gateway{a: a}
	return a, nil
}

// Open opens what OpenOffline does and prepares the certificates and the web
// interface. It binds no ports: Serve does.
func Open(ctx context.Context, cfg config.Config, opts Options) (app *App, err error) {
	a, err := OpenOffline(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.setup, err = setup.Prepare(a.store, cfg.DataDir); err != nil {
		return nil, err
	}
	a.certs, err = certs.Open(ctx, certs.Config{
		Mode: cfg.TLS.Mode, Hostname: cfg.Hostname,
		CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
		ACME:   certs.ACMEConfig{DirectoryURL: cfg.TLS.ACME.DirectoryURL, Email: cfg.TLS.ACME.Email, CAFile: cfg.TLS.ACME.CAFile},
		Cache:  a.store.AutocertCache("tls/"),
		Logger: a.log.With().Str("component", "certs").Logger(),
	})
	if err != nil {
		return nil, err
	}

	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sealpost_build_info", Help: "Always 1; the version is a label.",
		ConstLabels: prometheus.Labels{"version": opts.Version},
	})
	buildInfo.Set(1)
	a.registry.MustRegister(buildInfo, a.storeMetrics())
	a.registry.MustRegister(a.queue.Collectors()...)

	a.web, err = ui.New(ui.Options{
		Logger:     a.log.With().Str("component", "http").Logger(),
		Version:    opts.Version,
		Setup:      a.setup,
		SetupFacts: a.setupFacts,
		Ready:      a.Ready,
		HSTS:       a.certs.Trusted,
		Registry:   a.registry,

		Accounts: a.accounts,
		Messages: a.messages,
		Prefs: func(uid string) (p prefs.Prefs, err error) {
			err = a.store.View(func(tx *store.Tx) error { p, err = prefs.Load(tx, uid); return err })
			return p, err
		},
		SavePrefs: func(ctx context.Context, uid string, change func(*prefs.Prefs)) error {
			return a.store.Update(ctx, func(tx *store.Tx) error {
				p, err := prefs.Load(tx, uid)
				if err != nil {
					return err
				}
				change(&p)
				return prefs.Put(tx, uid, p)
			})
		},
		Welcome: a.welcome,
		LoadPolicy: func() (p policy.Policy, err error) {
			err = a.store.View(func(tx *store.Tx) error { p, err = policy.Load(tx); return err })
			return p, err
		},
		SavePolicy: func(ctx context.Context, actor string, p policy.Policy) error {
			if err := policy.Save(ctx, a.store, a.audit, actor, p); err != nil {
				return err
			}
			a.gateway.forgetPolicy()
			return nil
		},
		AdminNetworks: a.adminNetworks(),
		ReadSettings:  func() (settings.Settings, error) { return settings.Read(a.store) },
		SaveSettings: func(ctx context.Context, actor string, changes ...settings.Change) error {
			return settings.Set(ctx, a.store, a.audit, actor, changes...)
		},
		ApplySetup: func(ctx context.Context, answers setup.Answers) (account.User, error) {
			return a.setup.Apply(ctx, a.store, a.audit, a.accounts, answers)
		},
		SendTestMail: a.wizardTestMail,
		BrandImage:   a.brandImage,
		AuditPage: func(skip uint64, limit int) (events []audit.Event, total uint64, err error) {
			err = a.store.View(func(tx *store.Tx) error {
				if total, err = audit.Count(tx); err != nil {
					return err
				}
				events, err = audit.Newest(tx, skip, limit)
				return err
			})
			return events, total, err
		},
		VerifyAudit: func() (n uint64, err error) {
			err = a.store.View(func(tx *store.Tx) error { n, err = a.audit.Verify(tx); return err })
			return n, err
		},
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Ready reports nil once the store is healthy and the listeners are up.
func (a *App) Ready() error {
	if err := a.store.Healthy(); err != nil {
		return errors.New("store unavailable")
	}
	if !a.serving.Load() {
		return errors.New("listeners not up")
	}
	return nil
}

// setupFacts tells the setup page what this appliance is.
func (a *App) setupFacts() ui.SetupFacts {
	f := ui.SetupFacts{Hostname: a.hostname(), CertMode: a.cfg.TLS.Mode}
	if _, port, err := net.SplitHostPort(a.cfg.SMTP.RelayListen); err == nil {
		f.RelayPort = port
	}
	if a.cfg.TLS.Mode == config.TLSSelfSigned {
		f.CertMode = "Self-signed (made on this appliance)"
		if cert, err := a.certs.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: a.hostname()}); err == nil && len(cert.Certificate) > 0 {
			sum := sha256.Sum256(cert.Certificate[0])
			f.CertFingerprint = colonHex(sum[:])
		}
	}
	return f
}

func colonHex(b []byte) string {
	s := strings.ToUpper(hex.EncodeToString(b))
	parts := make([]string, 0, len(b))
	for i := 0; i < len(s); i += 2 {
		parts = append(parts, s[i:i+2])
	}
	return strings.Join(parts, ":")
}

// hostname is the name users reach the appliance by.
func (a *App) hostname() string {
	if a.cfg.Hostname != "" {
		return a.cfg.Hostname
	}
	return "localhost"
}

// Serve binds the listeners, prints the setup line while setup is pending,
// tells systemd it is ready, and serves until ctx is done; then it shuts the
// listeners down gracefully.
func (a *App) Serve(ctx context.Context) error {
	type server struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}
	var servers []server
	closeAll := func() {
		for _, s := range servers {
			s.ln.Close()
		}
	}
	bind := func(name, addr string, h http.Handler, tlsConfig *tls.Config) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen for %s on %s: %w", name, addr, err)
		}
		srv := ui.NewHTTPServer(h, a.log.With().Str("component", name).Logger())
		if tlsConfig != nil {
			ln = tls.NewListener(ln, tlsConfig)
		}
		servers = append(servers, server{name, srv, ln})
		a.log.Info().Str("listener", name).Str("addr", ln.Addr().String()).Msg("listening")
		return nil
	}

	if err := bind("https", a.cfg.HTTPS.Listen, a.web.Handler(), a.certs.TLSConfig()); err != nil {
		closeAll()
		return err
	}
	httpsPort := portOf(servers[0].ln.Addr())
	a.boundPort.Store(httpsPort)
	if err := bind("http", a.cfg.HTTP.Listen, a.certs.HTTPHandler(ui.RedirectToHTTPS(httpsPort)), nil); err != nil {
		closeAll()
		return err
	}
	metricsHandler := http.NewServeMux()
	metricsHandler.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}))
	if err := bind("metrics", a.cfg.Metrics.Listen, metricsHandler, nil); err != nil {
		closeAll()
		return err
	}

	// The SMTP gateway: the relay port for the organization's mail
	// servers, the submission port for mail programs.
	gatewaySrv := smtpd.New(a.smtpOptions())
	type smtpListener struct {
		port smtpd.Port
		ln   net.Listener
	}
	var smtpListeners []smtpListener
	for _, l := range []struct {
		port smtpd.Port
		addr string
	}{{smtpd.PortRelay, a.cfg.SMTP.RelayListen}, {smtpd.PortSubmission, a.cfg.SMTP.SubmissionListen}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			closeAll()
			for _, sl := range smtpListeners {
				sl.ln.Close()
			}
			return fmt.Errorf("listen for smtp %s on %s: %w", l.port, l.addr, err)
		}
		smtpListeners = append(smtpListeners, smtpListener{l.port, ln})
		a.log.Info().Str("listener", "smtp-"+string(l.port)).Str("addr", ln.Addr().String()).Msg("listening")
	}

	control, err := ctl.Listen(ctl.SocketPath(a.cfg.DataDir), a.Command, a.log.With().Str("component", "control").Logger())
	if err != nil {
		closeAll()
		return err
	}
	defer control.Close()
	queueCtx, stopQueue := context.WithCancel(ctx)
	var queueDone sync.WaitGroup
	queueDone.Go(func() { a.queue.Run(queueCtx) })
	queueDone.Go(func() { a.sweepMessages(queueCtx) })
	queueDone.Go(func() { a.messages.RunCounters(queueCtx) })
	queueDone.Go(func() { a.accounts.RunCounters(queueCtx) })
	defer func() { stopQueue(); queueDone.Wait(); a.relayConns.Close() }()

	errc := make(chan error, len(servers)+len(smtpListeners))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", s.name, err)
			}
		}()
	}
	for _, sl := range smtpListeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := gatewaySrv.Serve(sl.ln, sl.port); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, smtpd.ErrServerClosed) {
				errc <- fmt.Errorf("smtp %s listener: %w", sl.port, err)
			}
		}()
	}
	a.serving.Store(true)

	if token := a.setup.Token(); token != "" {
		host := a.hostname()
		if h, _, err := net.SplitHostPort(a.cfg.HTTPS.Listen); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() && a.cfg.Hostname == "" {
			host = h
		}
		fmt.Fprintf(a.opts.Stdout, "setup: https://%s/setup?token=%s\n", net.JoinHostPort(host, httpsPort), token)
		a.log.Info().Str("token_file", a.cfg.DataDir+"/"+setup.TokenFile).Msg("setup pending: open the setup link printed above")
	}
	if err := notifySystemd("READY=1\nSTATUS=Serving"); err != nil {
		a.log.Warn().Err(err).Msg("tell systemd we are ready")
	}
	a.log.Info().Str("version", a.opts.Version).Msg("sealpost ready")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.serving.Store(false)
	_ = notifySystemd("STOPPING=1")
	a.log.Info().Msg("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := gatewaySrv.Close(); err != nil {
		a.log.Warn().Err(err).Msg("smtp gateway shutdown")
	}
	for _, s := range servers {
		if err := s.srv.Shutdown(shutdownCtx); err != nil {
			a.log.Warn().Err(err).Str("listener", s.name).Msg("graceful shutdown cut short")
		}
	}
	wg.Wait()
	return serveErr
}

func portOf(addr net.Addr) string {
	_, port, _ := net.SplitHostPort(addr.String())
	return port
}

// Close releases everything Open acquired. It is safe after a partial Open.
func (a *App) Close() error {
	var errs []error
	if a.certs != nil {
		errs = append(errs, a.certs.Close())
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.keys != nil {
		a.keys.Close()
	}
	return errors.Join(errs...)
}
