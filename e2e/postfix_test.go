package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/sealpost/sealpost/mailer/smtptest"
)

// postfix is Debian's Postfix, run with its own configuration directory as
// the organization's relay.
type postfix struct {
	port   int
	caFile string // trusts its STARTTLS certificate
	dir    string
}

// startPostfix runs Postfix on a loopback port, relaying everything from
// loopback to next (host:port). It needs root and the postfix package, which
// `make test` installs; elsewhere the test says why it is skipped.
func startPostfix(t *testing.T, next string) *postfix {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("postfix is missing in CI; `make test` should have installed it (scripts/test-deps.sh)")
		}
		t.Skip("SKIP: Debian's postfix is not installed (run scripts/test-deps.sh as root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: running Postfix as a test relay needs root")
	}
	// Postfix's daemons run as the postfix user: the directory must be
	// reachable by it, which t.TempDir is not.
	dir, err := os.MkdirTemp("", "sealpost-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p := &postfix{dir: dir, port: freeTCPPort(t)}
	conf := filepath.Join(dir, "conf")
	for _, d := range []string{conf, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exec.Command("chown", "postfix", filepath.Join(dir, "data")).Run()
	certFile, keyFile := filepath.Join(conf, "cert.pem"), filepath.Join(conf, "key.pem")
	writeTestCert(t, certFile, keyFile)
	p.caFile = certFile
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [%[2]s]:%[3]s
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = may
smtpd_tls_chain_files = %[4]s, %[5]s
smtp_tls_security_level = may
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/maillog
alias_maps =
alias_database =
local_recipient_maps =
biff = no
`, dir, strings.Split(next, ":")[0], strings.Split(next, ":")[1], keyFile, certFile)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		t.Fatal(err)
	}
	// Listen on our port instead of 25, and run no daemon in a chroot.
	m := regexp.MustCompile(`(?m)^smtp\s+inet\s+n\s+-\s+y\s+-\s+-\s+smtpd`).ReplaceAll(master,
		[]byte(fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", p.port)))
	m = regexp.MustCompile(`(?m)^(\S+\s+(?:unix|inet|fifo|unix-dgram|pass)\s+[-ny]\s+[-ny]\s+)y`).ReplaceAll(m, []byte("${1}n"))
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("postfix", "-c", conf, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		t.Fatalf("postfix start: %v %s\n%s", err, out, log)
	}
	t.Cleanup(func() {
		exec.Command("postfix", "-c", conf, "stop").Run()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix log:\n%s", log)
		}
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
		if err == nil {
			conn.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix does not listen on %d", p.port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeTCPPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeTestCert(t *testing.T, certFile, keyFile string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "postfix-relay.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o640)
	exec.Command("chgrp", "postfix", keyFile).Run()
}

// TestThroughPostfix: Postfix stands as the organization's relay in front
// of a capture server; a DKIM-signed notification crosses it intact and its
// signatures verify with go-msgauth.
func TestThroughPostfix(t *testing.T) {
	t.Parallel()
	capture := smtptest.Start(t, smtptest.Options{})
	pf := startPostfix(t, capture.Addr)

	l := newLayout(t)
	in := start(t, l)
	cli := func(args ...string) (string, string, int) {
		return runCLI(t, l.env(), append([]string{args[0], args[1], "--config", "/dev/null"}, args[2:]...)...)
	}
	for _, kv := range [][2]string{{"organization.name", "Example Clinic"},
		{"mail.relay_host", "127.0.0.1"}, {"mail.relay_port", fmt.Sprint(pf.port)}, {"mail.relay_ca_file", pf.caFile},
		{"mail.from_address", "no-reply@clinic.example.test"}} {
		if _, errOut, code := cli("settings", "set", kv[0], kv[1]); code != 0 {
			t.Fatalf("settings set %s: %s", kv[0], errOut)
		}
	}
	out, errOut, code := cli("mail", "dkim")
	if code != 0 {
		t.Fatal(errOut)
	}
	dns := parseZone(out)
	if _, errOut, code := cli("settings", "set", "mail.dkim_sign", "true"); code != 0 {
		t.Fatal(errOut)
	}
	out, errOut, code = cli("mail", "test", "--to", "someone@example.test")
	if code != 0 || !strings.Contains(out, "queued as") {
		t.Fatalf("mail test through Postfix: %d\n%s\n%s", code, out, errOut)
	}
	got := capture.Wait(1, 60*time.Second)
	if len(got) != 1 {
		t.Fatalf("the capture server behind Postfix received %d messages", len(got))
	}
	data := got[0].Data
	if !bytes.Contains(data, []byte("postfix-relay.test")) {
		t.Error("the message did not pass through Postfix (no Received header of it)")
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if v, ok := dns[domain]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("no record for %s", domain)
		}})
	if err != nil || len(verifications) != 2 {
		t.Fatalf("DKIM after Postfix: %v, %d signatures", err, len(verifications))
	}
	for _, v := range verifications {
		if v.Err != nil {
			t.Errorf("DKIM signature broken by the trip through Postfix: %v", v.Err)
		}
	}
	in.stop(syscall.SIGTERM)
}
