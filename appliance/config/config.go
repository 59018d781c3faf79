// Package config loads Sealpost's boot configuration: built-in defaults, then
// a TOML file, then SEALPOST_* environment variables. It holds only what is
// needed to start (listen addresses, directories, TLS mode, log level);
// everything an administrator changes at run time lives in the encrypted
// store. Validation reports every problem at once, each naming its key.
package config

// Config is the boot configuration. The koanf tag is the key; the doc tag is
// the text that `sealpost config check --describe` prints above the key.
type Config struct {
	DataDir  string `koanf:"data_dir" doc:"Directory that holds the encrypted store, the search index and the setup token. Created with mode 0700 at first start."`
	KeyFile  string `koanf:"key_file" doc:"File holding the master key (mode 0600, kept outside data_dir). Created at first start when neither it nor any data exists; back it up: without it the data cannot be read."`
	Hostname string `koanf:"hostname" doc:"The name users reach this appliance by (used in links, certificates and the SMTP greeting). Set it for any real installation; empty means localhost."`
	Log      Log    `koanf:"log"`
	HTTPS    Listen `koanf:"https" doc:"Web interface (setup wizard, admin console, webmail)."`
	HTTP     Listen `koanf:"http" doc:"Plain HTTP: redirects to HTTPS and answers ACME HTTP-01 challenges."`
	SMTP     SMTP   `koanf:"smtp"`
	Metrics  Listen `koanf:"metrics" doc:"Prometheus metrics at /metrics. Keep it on loopback or a management network."`
	TLS      TLS    `koanf:"tls"`
	Admin    Admin  `koanf:"admin"`
}

// Log configures logging.
type Log struct {
	Level string `koanf:"level" doc:"One of debug, info, warn, error."`
}

// Listen is one listener. An empty address turns it off.
type Listen struct {
	Listen string `koanf:"listen" doc:"host:port to listen on; empty turns this listener off."`
}

// SMTP holds the SMTP gateway's listeners.
type SMTP struct {
	RelayListen      string `koanf:"relay_listen" doc:"Port that accepts mail from the organization's mail servers (only from the networks allowed in the console). Empty turns it off."`
	SubmissionListen string `koanf:"submission_listen" doc:"Submission port (STARTTLS and SMTP AUTH with the user's credentials). Empty turns it off."`
}

// TLS selects where the HTTPS certificate comes from.
type TLS struct {
	Mode     string `koanf:"mode" doc:"self-signed (made once and kept), files (cert_file and key_file, reloaded when they change) or acme."`
	CertFile string `koanf:"cert_file" doc:"PEM certificate chain, for mode files."`
	KeyFile  string `koanf:"key_file" doc:"PEM private key, for mode files."`
	ACME     ACME   `koanf:"acme"`
}

// ACME configures automatic certificates.
type ACME struct {
	DirectoryURL string `koanf:"directory_url" doc:"ACME directory URL. Empty: Let's Encrypt. Set it for an internal CA such as step-ca."`
	Email        string `koanf:"email" doc:"Contact address given to the ACME CA."`
	CAFile       string `koanf:"ca_file" doc:"PEM bundle to trust for the ACME server's own HTTPS (an internal CA). Empty: the system roots."`
}

// Admin restricts the admin console.
type Admin struct {
	AllowedNetworks []string `koanf:"allowed_networks" doc:"Networks (CIDR) from which the admin console answers. In the environment, separate them with commas."`
}

// TLS modes.
const (
	TLSSelfSigned = "self-signed"
	TLSFiles      = "files"
	TLSACME       = "acme"
)

// Defaults returns the built-in configuration: data in ./data, key in
// ./sealpost.key, non-privileged ports, a self-signed certificate.
func Defaults() Config {
	return Config{
		DataDir: "./data",
		KeyFile: "./sealpost.key",
		Log:     Log{Level: "info"},
		HTTPS:   Listen{Listen: ":8443"},
		HTTP:    Listen{Listen: ":8080"},
		SMTP:    SMTP{RelayListen: ":2525", SubmissionListen: ":2587"},
		Metrics: Listen{Listen: "127.0.0.1:9090"},
		TLS:     TLS{Mode: TLSSelfSigned},
		Admin: Admin{AllowedNetworks: []string{
			"127.0.0.0/8", "::1/128", // loopback
			"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", // private ranges
		}},
	}
}
