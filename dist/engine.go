package dist

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Errors of the engine and the connection; messages name the address or
// file at fault.
var (
	ErrEngine  = errors.New("dist: embedded NATS server")
	ErrConnect = errors.New("dist: connect to NATS")
)

// EngineConfig configures the NATS server that a search embeds.
type EngineConfig struct {
	// StoreDir holds JetStream's file store; a search puts it inside its
	// output folder so that the queue survives a restart with --resume.
	StoreDir string
	// Listen is an optional HOST:PORT for worker processes (port 0: any
	// free port). Empty means no listener at all: only in-process
	// connections, so nothing outside the process can reach the queue.
	Listen string
}

// Engine is an embedded NATS server with JetStream.
type Engine struct {
	srv *server.Server
}

// StartEngine starts an embedded server and waits until it accepts
// connections. Every JetStream write is synced to disk before it is
// acknowledged (SyncAlways), so an acknowledged task or result survives
// the machine going down, not only the process.
func StartEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("%w: no store folder", ErrEngine)
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: store folder: %w", ErrEngine, err)
	}
	opts := &server.Options{
		ServerName: "evosearch",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: true,
		NoSigs:     true, // the search handles signals itself
		NoLog:      true,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, err := splitListen(cfg.Listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEngine, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		if cfg.Listen != "" {
			return nil, fmt.Errorf("%w: not ready after 30 s (is %s free?)", ErrEngine, cfg.Listen)
		}
		return nil, fmt.Errorf("%w: not ready after 30 s", ErrEngine)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("%w: JetStream did not start in %s", ErrEngine, cfg.StoreDir)
	}
	return &Engine{srv: srv}, nil
}

// splitListen parses HOST:PORT; port 0 asks for any free port.
func splitListen(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: listen address %q: %w", ErrEngine, addr, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w: listen address %q: bad port", ErrEngine, addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT // NATS reads 0 as its default port 4222
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// URL is the address worker processes connect to, or "" when the engine
// has no listener.
func (e *Engine) URL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL() // the bound port, also when a free one was asked for
}

// Connect opens an in-process connection (no socket) to the engine.
func (e *Engine) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(e.srv), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("%w: in-process: %w", ErrConnect, err)
	}
	return nc, nil
}

// Shutdown stops the server; JetStream's state stays in StoreDir.
func (e *Engine) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// ConnConfig says how to reach an external NATS server or cluster, with
// the credentials NATS users expect: a .creds file (JWT and seed), an nkey
// seed file, user:password or a token inside the URL, and TLS files.
type ConnConfig struct {
	URL     string // one or more comma-separated server URLs
	Name    string // connection name shown by the server's monitoring
	Creds   string // user credentials file (JWT + nkey seed)
	NKey    string // nkey seed file
	TLSCert string // client certificate (with TLSKey) for mutual TLS
	TLSKey  string
	TLSCA   string // CA bundle to verify the server with
	// Retry keeps trying in the background when the first connection
	// fails (workers started before the coordinator); without it Connect
	// reports the failure.
	Retry bool
}

// Connect connects to the configured server; it reconnects for ever after
// a lost connection, since a search or a worker outlives server restarts.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: no URL", ErrConnect)
	}
	opts := []nats.Option{nats.Name(cfg.Name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(cfg.Retry)}
	if cfg.Creds != "" {
		if _, err := os.Stat(cfg.Creds); err != nil {
			return nil, fmt.Errorf("%w: credentials file: %w", ErrConnect, err)
		}
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey seed file %s: %w", ErrConnect, cfg.NKey, err)
		}
		opts = append(opts, o)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, fmt.Errorf("%w: a TLS client certificate needs both the certificate and the key file", ErrConnect)
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConnect, redactURL(cfg.URL), err)
	}
	return nc, nil
}

// redactURL hides passwords and tokens of URLs in messages.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
