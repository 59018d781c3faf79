package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshotDir keeps the pictures of every page flow, for people to look at.
var screenshotDir = filepath.Join("..", "bin", "screenshots")

// browser starts Debian's Chromium headless. Without Chromium the test is
// skipped with the reason, except in CI, where `make test` installs it and a
// missing browser is a failure.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is missing in CI; `make test` should have installed it (scripts/test-deps.sh)")
		}
		t.Skip("SKIP browser test: chromium is not installed (run scripts/test-deps.sh as root to install it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 180*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(screenshotDir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestBrowserSetupPage follows the setup link in a real browser: without the
// token the page explains where to find it; with it the welcome page shows,
// and the token leaves the address bar.
func TestBrowserSetupPage(t *testing.T) {
	t.Parallel()
	in := start(t, newLayout(t))
	ctx := browser(t)
	base := "https://" + in.https

	err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	if h1 != "Setup token required" {
		t.Errorf("without the token the page says %q", h1)
	}
	screenshot(t, ctx, "setup-locked")

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/setup?token=WRONGTOKEN"), chromedp.WaitVisible(chromedp.CSS(".notice.error"))); err != nil {
		t.Fatalf("no error notice for a wrong token: %v", err)
	}
	screenshot(t, ctx, "setup-wrong-token")

	if err := chromedp.Do(ctx, chromedp.Navigate(in.setupURL), chromedp.WaitVisible(chromedp.CSS(".steps"))); err != nil {
		t.Fatal(err)
	}
	h1, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	if h1 != "Welcome to Sealpost" {
		t.Errorf("with the token the page says %q", h1)
	}
	// setup.js strips the token from the address bar; the cookie keeps access.
	deadline := time.Now().Add(5 * time.Second)
	loc := ""
	for time.Now().Before(deadline) {
		if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(loc, "token=") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(loc, "token=") {
		t.Errorf("the token stays in the address bar: %s", loc)
	}
	facts, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".facts")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(facts, "SHA-256 fingerprint") || !strings.Contains(facts, "e2e-test") {
		t.Errorf("the facts list lacks the fingerprint or version: %q", facts)
	}
	screenshot(t, ctx, "setup-welcome")

	// A reload without the token in the URL still shows setup (the cookie).
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/setup"), chromedp.WaitVisible(chromedp.CSS(".steps"))); err != nil {
		t.Fatalf("reload without the token lost access: %v", err)
	}
}
