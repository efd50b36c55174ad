// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dapr/dapr/pkg/healthz"
	"github.com/dapr/dapr/pkg/modes"
	"github.com/dapr/dapr/pkg/security"
	"github.com/dapr/dapr/pkg/sentry/server/ca/bundle"
	spiffecontext "github.com/dapr/kit/crypto/spiffe/context"
	"github.com/dapr/kit/logger"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// sentryConfig is a Dapr Configuration for a Sentry: 10 s workload certificates and a clock
// skew of one second, so a certificate lives 11 s and is renewed every 5.5 s. extra is
// appended under spec.mtls (token validators).
func sentryConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, []byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"+
		"metadata:\n  name: daprsystem\nspec:\n  mtls:\n    enabled: true\n"+
		"    workloadCertTTL: 10s\n    allowedClockSkew: 1s\n"+extra), 0o644)
	return path
}

// ca is a running Sentry, Dapr's or picket's.
type ca struct {
	p           *proc
	port        int
	healthzPort int
	credsDir    string
	trustDomain string
}

func (c *ca) address() string { return addr(c.port) }
func (c *ca) caFile() string  { return filepath.Join(c.credsDir, "ca.crt") }

func (c *ca) waitHealthy(t *testing.T) {
	t.Helper()
	waitFor(t, 60*time.Second, c.p.name+" /healthz 200", func() bool {
		if !c.p.alive() {
			t.Fatalf("%s exited:\n%s", c.p.name, c.p.output())
		}
		return httpStatus(c.healthzPort, "/healthz") == 200
	})
}

// startDaprSentry starts Dapr's own Sentry, self-hosted, on the credentials in credsDir.
func startDaprSentry(t *testing.T, credsDir, trustDomain, config string) *ca {
	t.Helper()
	c := &ca{port: freePort(t), healthzPort: freePort(t), credsDir: credsDir, trustDomain: trustDomain}
	c.p = startProc(t, "dapr-sentry", nil, daprSentryBin,
		"--mode", "standalone", "--issuer-credentials", credsDir, "--trust-domain", trustDomain,
		"--port", fmt.Sprint(c.port), "--listen-address", "127.0.0.1",
		"--healthz-port", fmt.Sprint(c.healthzPort), "--healthz-listen-address", "127.0.0.1",
		"--metrics-port", fmt.Sprint(freePort(t)), "--metrics-listen-address", "127.0.0.1",
		"--config", config, "--log-level", "info")
	c.waitHealthy(t)
	return c
}

// startPicketSentry starts `picket sentry` on credsDir (generated there if it is empty).
func startPicketSentry(t *testing.T, credsDir, trustDomain, config string) *ca {
	t.Helper()
	c := &ca{port: freePort(t), healthzPort: freePort(t), credsDir: credsDir, trustDomain: trustDomain}
	args := []string{"sentry", "--issuer-credentials", credsDir, "--trust-domain", trustDomain,
		"--port", fmt.Sprint(c.port), "--listen-address", "127.0.0.1",
		"--healthz-port", fmt.Sprint(c.healthzPort), "--healthz-listen-address", "127.0.0.1",
		"--metrics-port", fmt.Sprint(freePort(t)), "--metrics-listen-address", "127.0.0.1"}
	if config != "" {
		args = append(args, "--config", config)
	}
	c.p = startProc(t, "picket-sentry", nil, picketBin, args...)
	c.waitHealthy(t)
	return c
}

// daprCredentials writes a root and an issuer made by Dapr's own bundle generator (the code
// Sentry uses to make its credentials) into dir, and returns the root key.
func daprCredentials(t *testing.T, dir, trustDomain string, rootKey crypto.Signer) crypto.Signer {
	t.Helper()
	if rootKey == nil {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		rootKey = k
	}
	b, err := bundle.GenerateX509(bundle.OptionsX509{X509RootKey: rootKey, TrustDomain: trustDomain,
		AllowedClockSkew: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, "issuer.key"), b.IssKeyPEM, 0o600)
	writeAtomic(t, filepath.Join(dir, "issuer.crt"), b.IssChainPEM, 0o644)
	writeAtomic(t, filepath.Join(dir, "ca.crt"), b.TrustAnchors, 0o644)
	return rootKey
}

// runPicketCert runs a `picket cert` subcommand and fails the test if it fails.
func runPicket(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, picketBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("picket %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// picketRun is a running `picket run`.
type picketRun struct {
	p         *proc
	adminPort int
}

var installedRE = regexp.MustCompile(`identity installed"? reason=(\S+) spiffe_id=(\S+) serial=(\S+)`)

// installed lists the (reason, SPIFFE ID, serial) of every identity picket installed so far.
func (r *picketRun) installed() [][]string {
	var out [][]string
	for _, m := range installedRE.FindAllStringSubmatch(r.p.output(), -1) {
		out = append(out, m[1:])
	}
	return out
}

func (r *picketRun) waitInstalled(t *testing.T, n int, timeout time.Duration) [][]string {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d identities installed by picket run", n), func() bool {
		if !r.p.alive() {
			t.Fatalf("picket run exited:\n%s", r.p.output())
		}
		return len(r.installed()) >= n
	})
	return r.installed()
}

// startPicketRun writes picket.ini from sections (in order; each a header and its lines) and
// starts `picket run -c picket.ini`. With wait it returns once /readyz is 200.
func startPicketRun(t *testing.T, name string, sections []string, wait bool) *picketRun {
	t.Helper()
	return startPicketRunWith(t, name, sections, nil, nil, wait)
}

// startPicketRunWith is startPicketRun with env added to the environment and args after
// `run -c picket.ini`.
func startPicketRunWith(t *testing.T, name string, sections, env, args []string, wait bool) *picketRun {
	t.Helper()
	r := &picketRun{adminPort: freePort(t)}
	ini := filepath.Join(t.TempDir(), name+".ini")
	text := strings.Join(sections, "\n") + fmt.Sprintf("\n[admin]\nlisten = 127.0.0.1:%d\n", r.adminPort)
	writeFile(t, ini, []byte(text), 0o600)
	r.p = startProc(t, name, env, picketBin, append([]string{"run", "-c", ini}, args...)...)
	if wait {
		waitFor(t, 60*time.Second, name+" /readyz 200", func() bool {
			if !r.p.alive() {
				t.Fatalf("%s exited:\n%s", name, r.p.output())
			}
			return httpStatus(r.adminPort, "/readyz") == 200
		})
	}
	return r
}

// daprdLog is where the security packages of daprd log (one logger per name, process-wide).
var daprdLog struct {
	once sync.Once
	buf  atomic.Pointer[syncBuffer]
}

type teeToCurrent struct{}

func (teeToCurrent) Write(p []byte) (int, error) {
	if b := daprdLog.buf.Load(); b != nil {
		return b.Write(p)
	}
	return len(p), nil
}

// captureDaprdLogs sends the logs of daprd's security code to a buffer for this test.
func captureDaprdLogs(t *testing.T) *syncBuffer {
	daprdLog.once.Do(func() {
		for _, name := range []string{"dapr.runtime.security"} {
			logger.NewLogger(name).SetOutput(teeToCurrent{})
		}
	})
	b := &syncBuffer{}
	daprdLog.buf.Store(b)
	t.Cleanup(func() {
		daprdLog.buf.CompareAndSwap(b, nil)
		if t.Failed() {
			out := b.String()
			if len(out) > 6000 {
				out = "..." + out[len(out)-6000:]
			}
			t.Logf("--- daprd identity client log:\n%s", out)
		}
	})
	return b
}

// daprd is daprd's identity client (github.com/dapr/dapr/pkg/security) as daprd runs it.
type daprd struct {
	h      security.Handler
	source x509svid.Source
}

type daprdOptions struct {
	appID          string
	sentry         string
	cpTrustDomain  string
	anchors        []byte
	anchorsFile    string
	tokenFile      string
	timeout        time.Duration
	expectNoHandle bool
	// Kubernetes mode: the token comes from DAPR_SENTRY_TOKEN_FILE with the KUBERNETES
	// validator; Sentry is in cpNamespace and the request names requestNamespace.
	kubernetes       bool
	cpNamespace      string
	requestNamespace string
}

// startDaprd runs security.New + Run exactly as daprd does in self-hosted mode (or, with
// o.kubernetes, in Kubernetes mode) with mTLS on, and waits for its first certificate.
func startDaprd(t *testing.T, o daprdOptions) (*daprd, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts := security.Options{
		SentryAddress:           o.sentry,
		ControlPlaneTrustDomain: o.cpTrustDomain,
		ControlPlaneNamespace:   "default",
		AppID:                   o.appID,
		MTLSEnabled:             true,
		Mode:                    modes.StandaloneMode,
		Healthz:                 healthz.New(),
	}
	if o.kubernetes {
		opts.Mode = modes.KubernetesMode
		opts.ControlPlaneNamespace = o.cpNamespace
		opts.OverrideRequestNamespace = &o.requestNamespace
	}
	if o.anchorsFile != "" {
		opts.TrustAnchorsFile = &o.anchorsFile
	} else {
		opts.TrustAnchors = o.anchors
	}
	if o.tokenFile != "" {
		opts.SentryTokenFile = &o.tokenFile
	}
	prov, err := security.New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("security.New: %v", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- prov.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-runErr:
		case <-time.After(10 * time.Second):
			t.Errorf("daprd identity client %s did not stop", o.appID)
		}
	})
	timeout := o.timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	hctx, hcancel := context.WithTimeout(ctx, timeout)
	defer hcancel()
	type result struct {
		h   security.Handler
		err error
	}
	got := make(chan result, 1)
	go func() {
		h, err := prov.Handler(hctx)
		got <- result{h, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			return nil, r.err
		}
		src, ok := spiffecontext.X509From(r.h.WithSVIDContext(context.Background()))
		if !ok {
			t.Fatal("daprd handler has no X.509 SVID source")
		}
		return &daprd{h: r.h, source: src}, nil
	case err := <-runErr:
		// daprd exits when its first fetch fails; so does this client. The clean-up waits
		// for the same result: hand it back.
		runErr <- err
		if err == nil {
			err = errors.New("identity client stopped")
		}
		return nil, err
	}
}

func mustDaprd(t *testing.T, o daprdOptions) *daprd {
	t.Helper()
	d, err := startDaprd(t, o)
	if err != nil {
		t.Fatalf("daprd identity client %s got no certificate: %v", o.appID, err)
	}
	return d
}

func (d *daprd) svid(t *testing.T) *x509svid.SVID {
	s, err := d.source.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serials tracks the distinct certificates daprd's client has held, sampled by a goroutine.
type serials struct {
	mu   sync.Mutex
	seen []string
	iss  map[string]bool
}

func (d *daprd) watchSerials(t *testing.T) *serials {
	s := &serials{iss: map[string]bool{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if sv, err := d.source.GetX509SVID(); err == nil {
				serial := sv.Certificates[0].SerialNumber.String()
				s.mu.Lock()
				if len(s.seen) == 0 || s.seen[len(s.seen)-1] != serial {
					s.seen = append(s.seen, serial)
				}
				if len(sv.Certificates) > 1 {
					s.iss[sv.Certificates[1].SerialNumber.String()] = true
				}
				s.mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return s
}

func (s *serials) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *serials) issuers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.iss {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustID(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// app is the plaintext service behind a picket inbound: it answers every HTTP request with
// "hello <path>" and counts the connections it accepted and the bytes it read.
type app struct {
	port  int
	conns atomic.Int64 // connections accepted
	bytes atomic.Int64 // bytes read from them
	hits  atomic.Int64 // requests answered
	srv   *http.Server
}

func (a *app) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingListener struct {
	net.Listener
	a *app
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.a.conns.Add(1)
		c = countingConn{c, &l.a.bytes}
	}
	return c, err
}

func startApp(t *testing.T) *app {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{port: l.Addr().(*net.TCPAddr).Port}
	a.srv = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(countingListener{l, a}) }()
	t.Cleanup(func() { a.srv.Close() })
	return a
}

// get makes one HTTP request on a new connection with the given TLS configuration (nil: plain)
// and checks the answer.
func get(port int, tlsConf *tls.Config, path string) error {
	_, err := getPeer(port, tlsConf, path)
	return err
}

// getPeer is get, and returns the certificates the TLS server presented.
func getPeer(port int, tlsConf *tls.Config, path string) ([]*x509.Certificate, error) {
	tr := &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	c := http.Client{Transport: tr, Timeout: 10 * time.Second}
	res, err := c.Get(fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, path))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if want := "hello " + path; string(body) != want {
		return nil, fmt.Errorf("answer %q, want %q", body, want)
	}
	if res.TLS != nil {
		return res.TLS.PeerCertificates, nil
	}
	return nil, nil
}

// traffic makes requests back to back until stopped and keeps every failure.
type traffic struct {
	ok     atomic.Int64
	mu     sync.Mutex
	failed []string
	stop   chan struct{}
	done   chan struct{}
}

func startTraffic(t *testing.T, do func(i int) error) *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			default:
			}
			if err := do(i); err != nil {
				tr.mu.Lock()
				tr.failed = append(tr.failed, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				tr.mu.Unlock()
			} else {
				tr.ok.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(tr.end)
	return tr
}

func (tr *traffic) end() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

// check stops the traffic and fails the test if a request failed or too few succeeded.
func (tr *traffic) check(t *testing.T, min int64) {
	t.Helper()
	tr.end()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.failed) > 0 {
		n := len(tr.failed)
		if n > 5 {
			tr.failed = tr.failed[:5]
		}
		t.Fatalf("%d requests failed (of %d), first: %s", n, int64(n)+tr.ok.Load(), strings.Join(tr.failed, "; "))
	}
	if tr.ok.Load() < min {
		t.Fatalf("only %d requests succeeded, want at least %d", tr.ok.Load(), min)
	}
}

func pemCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}
