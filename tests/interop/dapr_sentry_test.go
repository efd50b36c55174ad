// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sidecarINI is the picket.ini of a sidecar "web" with an inbound in front of appPort (only
// spiffe://public/ns/default/frontend may call it) and an outbound to a peer that must prove
// spiffe://public/ns/default/backend.
func sidecarINI(sentry *ca, anchors string, inPort, appPort, outPort, peerPort int, extra ...string) []string {
	s := []string{
		"[agent]\napp_id = web",
		fmt.Sprintf("[sentry]\naddress = %s\ntrust_anchors_file = %s\n%s", sentry.address(), anchors,
			strings.Join(extra, "\n")),
		fmt.Sprintf("[inbound in]\nlisten = 127.0.0.1:%d\ntarget = 127.0.0.1:%d\nallow_app_id = frontend", inPort, appPort),
	}
	if outPort != 0 {
		s = append(s, fmt.Sprintf("[outbound out]\nlisten = 127.0.0.1:%d\ntarget = 127.0.0.1:%d\nexpect_app_id = backend",
			outPort, peerPort))
	}
	return s
}

// spiffeServer serves "hello <path>" over mTLS with daprd's own listener (NetListenerID: the
// peer must prove peerID), and counts what reached it.
func spiffeServer(t *testing.T, d *daprd, peerID string) *app {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{port: l.Addr().(*net.TCPAddr).Port}
	a.srv = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	inner := countingListener{l, a}
	go func() { _ = a.srv.Serve(d.h.NetListenerID(inner, mustID(t, peerID))) }()
	t.Cleanup(func() { a.srv.Close() })
	return a
}

// TestDaprSentryInsecure: picket run gets its identity from Dapr's Sentry (self-hosted, insecure
// validator) and renews it at least three times while a daprd-identified peer calls through
// picket's inbound and picket's outbound calls a daprd-identified server, without one failure.
func TestDaprSentryInsecure(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	daprCredentials(t, creds, "localhost", nil)
	sentry := startDaprSentry(t, creds, "localhost", sentryConfig(t, dir, ""))
	runSidecarAgainst(t, sentry, nil, "")
}

// runSidecarAgainst is the renewal-under-traffic case against any Sentry: picket "web" beside an
// app, daprd-identified peers "frontend" (caller) and "backend" (server). tokenFor, when set,
// writes a token for an app id and returns its path (JWKS validator).
func runSidecarAgainst(t *testing.T, sentry *ca, tokenFor func(appID string) string, cptd string) {
	t.Helper()
	if cptd == "" {
		cptd = sentry.trustDomain
	}
	anchors := sentry.caFile()
	caPEM := readFile(t, anchors)
	opts := func(appID string) daprdOptions {
		o := daprdOptions{appID: appID, sentry: sentry.address(), cpTrustDomain: cptd, anchors: caPEM}
		if tokenFor != nil {
			o.tokenFile = tokenFor(appID)
		}
		return o
	}
	logs := captureDaprdLogs(t)
	frontend := mustDaprd(t, opts("frontend"))
	backend := mustDaprd(t, opts("backend"))
	backendSrv := spiffeServer(t, backend, "spiffe://public/ns/default/web")

	target := startApp(t)
	inPort, outPort := freePort(t), freePort(t)
	var extra []string
	if tokenFor != nil {
		extra = append(extra, "token_file = "+tokenFor("web"))
	}
	if cptd != "localhost" {
		extra = append(extra, "control_plane_trust_domain = "+cptd)
	}
	web := startPicketRun(t, "picket-web", sidecarINI(sentry, anchors, inPort, target.port, outPort, backendSrv.port, extra...), true)
	first := web.waitInstalled(t, 1, 30*time.Second)[0]
	if first[1] != "spiffe://public/ns/default/web" {
		t.Fatalf("picket installed %s, want spiffe://public/ns/default/web", first[1])
	}

	toWeb := frontend.h.MTLSClientConfig(mustID(t, "spiffe://public/ns/default/web"))
	fseen := frontend.watchSerials(t)
	tr := startTraffic(t, func(i int) error {
		if i%2 == 0 {
			if err := get(inPort, toWeb, fmt.Sprintf("/in/%d", i)); err != nil {
				return fmt.Errorf("inbound: %w", err)
			}
			return nil
		}
		if err := get(outPort, nil, fmt.Sprintf("/out/%d", i)); err != nil {
			return fmt.Errorf("outbound: %w", err)
		}
		return nil
	})
	// Three renewals of picket's 11 s certificates (renewed at about half life), and daprd's
	// peers renewing theirs too.
	got := web.waitInstalled(t, 4, 90*time.Second)
	waitFor(t, 30*time.Second, "frontend's second certificate", func() bool { return fseen.count() >= 2 })
	tr.check(t, 20)
	t.Logf("picket installed %v; frontend held %d certificates; %d requests", got, fseen.count(), tr.ok.Load())
	for _, g := range got {
		if g[1] != "spiffe://public/ns/default/web" {
			t.Errorf("installed %v", g)
		}
	}
	if strings.Contains(logs.String(), "Error renewing identity") {
		t.Errorf("daprd's client failed a renewal:\n%s", logs.String())
	}
	if target.conns.Load() == 0 || backendSrv.conns.Load() == 0 {
		t.Fatalf("app saw %d connections, backend %d", target.conns.Load(), backendSrv.conns.Load())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwksIssuer signs RS256 tokens and publishes its key as a JWKS file.
type jwksIssuer struct {
	key  *rsa.PrivateKey
	kid  string
	path string
}

func newJWKSIssuer(t *testing.T, dir string) *jwksIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	j := &jwksIssuer{key: key, kid: "interop-1", path: filepath.Join(dir, "jwks.json")}
	set := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": j.kid, "alg": "RS256", "use": "sig",
		"n": b64url(key.N.Bytes()), "e": b64url(big.NewInt(int64(key.E)).Bytes()),
	}}}
	data, _ := json.Marshal(set)
	writeFile(t, j.path, data, 0o644)
	return j
}

func (j *jwksIssuer) token(t *testing.T, aud, sub string) string {
	t.Helper()
	now := time.Now().Unix()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": j.kid})
	c, _ := json.Marshal(map[string]any{"aud": []string{aud}, "sub": sub, "iat": now, "nbf": now - 10,
		"exp": now + 3600})
	signing := b64url(h) + "." + b64url(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, j.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64url(sig)
}

// TestDaprSentryJWKS: the same with Dapr Sentry's JWKS token validator only: picket sends the
// token from token_file (signed here), as daprd sends DAPR_SENTRY_TOKEN_FILE's; a token for
// another identity is refused.
func TestDaprSentryJWKS(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	daprCredentials(t, creds, "localhost", nil)
	issuer := newJWKSIssuer(t, dir)
	cfg := sentryConfig(t, dir, fmt.Sprintf("    tokenValidators:\n      - name: jwks\n"+
		"        options:\n          source: %q\n", issuer.path))
	sentry := startDaprSentry(t, creds, "localhost", cfg)
	const aud = "spiffe://localhost/ns/default/dapr-sentry"
	tokenFor := func(appID string) string {
		p := filepath.Join(dir, appID+".token")
		writeFile(t, p, []byte(issuer.token(t, aud, "spiffe://public/ns/default/"+appID)), 0o600)
		return p
	}

	t.Run("renewals", func(t *testing.T) { runSidecarAgainst(t, sentry, tokenFor, "") })

	t.Run("token for another identity", func(t *testing.T) {
		tok := filepath.Join(dir, "stolen.token")
		writeFile(t, tok, []byte(issuer.token(t, aud, "spiffe://public/ns/default/web")), 0o600)
		other := startPicketRun(t, "picket-other", []string{
			"[agent]\napp_id = other",
			fmt.Sprintf("[sentry]\naddress = %s\ntrust_anchors_file = %s\ntoken_file = %s",
				sentry.address(), sentry.caFile(), tok),
		}, false)
		m := other.p.waitLog(t, `.*PERMISSION_DENIED.*sub.* not satisfied.*`, 30*time.Second, 0)
		t.Logf("picket, as expected: %s", m[0])
		if n := len(other.installed()); n != 0 {
			t.Fatalf("picket installed an identity with another app's token: %v", other.installed())
		}
	})
}

// TestDaprSentryTrustDomainTrap: the seed recipe starts Sentry with --trust-domain
// cluster.local, so Sentry presents spiffe://cluster.local/ns/default/dapr-sentry. daprd's
// client refuses it; picket refuses it and names --control-plane-trust-domain; with that set,
// both work.
func TestDaprSentryTrustDomainTrap(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	daprCredentials(t, creds, "cluster.local", nil)
	sentry := startDaprSentry(t, creds, "cluster.local", sentryConfig(t, dir, ""))
	dlogs := captureDaprdLogs(t)

	_, err := startDaprd(t, daprdOptions{appID: "frontend", sentry: sentry.address(),
		cpTrustDomain: "localhost", anchors: readFile(t, sentry.caFile()), timeout: 10 * time.Second})
	if err == nil {
		t.Fatal("daprd's client accepted Sentry with the default control-plane trust domain")
	}
	t.Logf("daprd's client, as expected: %v\n%s", err, dlogs.String())

	trapped := startPicketRun(t, "picket-trapped", []string{
		"[agent]\napp_id = web",
		fmt.Sprintf("[sentry]\naddress = %s\ntrust_anchors_file = %s", sentry.address(), sentry.caFile()),
	}, false)
	m := trapped.p.waitLog(t, `.*--control-plane-trust-domain.*`, 30*time.Second, 0)
	for _, want := range []string{"spiffe://cluster.local/ns/default/dapr-sentry",
		"spiffe://localhost/ns/default/dapr-sentry", "--control-plane-trust-domain cluster.local"} {
		if !strings.Contains(m[0], want) {
			t.Errorf("picket's error does not name %q: %s", want, m[0])
		}
	}
	if len(trapped.installed()) != 0 {
		t.Fatal("picket installed an identity from a Sentry with the wrong SPIFFE ID")
	}

	fixed := startPicketRun(t, "picket-fixed", []string{
		"[agent]\napp_id = web",
		fmt.Sprintf("[sentry]\naddress = %s\ntrust_anchors_file = %s\ncontrol_plane_trust_domain = cluster.local",
			sentry.address(), sentry.caFile()),
	}, true)
	if got := fixed.waitInstalled(t, 1, 30*time.Second); got[0][1] != "spiffe://public/ns/default/web" {
		t.Fatalf("installed %v", got)
	}
	mustDaprd(t, daprdOptions{appID: "frontend", sentry: sentry.address(), cpTrustDomain: "cluster.local",
		anchors: readFile(t, sentry.caFile())})
}
