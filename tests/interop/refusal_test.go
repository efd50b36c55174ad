// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dapr/dapr/pkg/sentry/server/ca/bundle"
)

// TestWrongIDsRefused: with certificates from Dapr's Sentry on every side, each wrong identity is
// refused, in both directions, and nothing reaches an app: picket's inbound never connects its
// app for a caller its policy does not allow, nor for a caller that refuses picket; picket's
// outbound sends the local app's bytes to no server that is not the expected one, and a
// go-spiffe server that expects someone else gets no request.
func TestWrongIDsRefused(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	daprCredentials(t, creds, "localhost", nil)
	sentry := startDaprSentry(t, creds, "localhost", sentryConfig(t, dir, ""))
	captureDaprdLogs(t)
	opts := func(appID string) daprdOptions {
		return daprdOptions{appID: appID, sentry: sentry.address(), cpTrustDomain: "localhost",
			anchors: readFile(t, sentry.caFile())}
	}
	frontend, intruder := mustDaprd(t, opts("frontend")), mustDaprd(t, opts("intruder"))
	backend, impostor := mustDaprd(t, opts("backend")), mustDaprd(t, opts("impostor"))
	web := "spiffe://public/ns/default/web"
	// A genuine backend that expects the caller to be someone other than web.
	picky := spiffeServer(t, backend, "spiffe://public/ns/default/someone-else")
	// An impostor: a valid certificate for another app, happy to serve web.
	fake := spiffeServer(t, impostor, web)
	// The genuine backend, expecting web.
	good := spiffeServer(t, backend, web)

	target := startApp(t)
	inPort := freePort(t)
	outGood, outFake, outPicky := freePort(t), freePort(t), freePort(t)
	sections := sidecarINI(sentry, sentry.caFile(), inPort, target.port, outGood, good.port)
	for _, o := range []struct{ port, peer int }{{outFake, fake.port}, {outPicky, picky.port}} {
		sections = append(sections, fmt.Sprintf("[outbound to%d]\nlisten = 127.0.0.1:%d\ntarget = 127.0.0.1:%d\nexpect_app_id = backend",
			o.peer, o.port, o.peer))
	}
	startPicketRun(t, "picket-web", sections, true)

	// The allowed paths work, so each refusal below is about the identity alone.
	if err := get(inPort, frontend.h.MTLSClientConfig(mustID(t, web)), "/ok"); err != nil {
		t.Fatalf("frontend -> picket inbound: %v", err)
	}
	if err := get(outGood, nil, "/ok"); err != nil {
		t.Fatalf("picket outbound -> backend: %v", err)
	}
	appConns, goodHits := target.conns.Load(), good.hits.Load()

	t.Run("inbound caller not allowed", func(t *testing.T) {
		err := get(inPort, intruder.h.MTLSClientConfig(mustID(t, web)), "/intruder")
		if err == nil {
			t.Fatal("picket's inbound let spiffe://public/ns/default/intruder through")
		}
		t.Logf("refused: %v", err)
	})
	t.Run("caller expects another server", func(t *testing.T) {
		err := get(inPort, frontend.h.MTLSClientConfig(mustID(t, "spiffe://public/ns/default/not-web")), "/wrong")
		if err == nil || !strings.Contains(err.Error(), "unexpected ID") {
			t.Fatalf("go-spiffe accepted picket as not-web, or failed otherwise: %v", err)
		}
		t.Logf("refused: %v", err)
	})
	t.Run("outbound server is an impostor", func(t *testing.T) {
		if err := get(outFake, nil, "/secret"); err == nil {
			t.Fatal("picket's outbound talked to spiffe://public/ns/default/impostor as backend")
		}
		if n := fake.hits.Load(); n != 0 {
			t.Fatalf("the impostor received %d requests", n)
		}
	})
	t.Run("server expects another caller", func(t *testing.T) {
		if err := get(outPicky, nil, "/secret"); err == nil {
			t.Fatal("a go-spiffe server expecting someone-else served picket")
		}
		if n := picky.hits.Load(); n != 0 {
			t.Fatalf("the server received %d requests", n)
		}
	})
	// Nothing of the refused callers reached the app behind picket's inbound: not a connection.
	if n := target.conns.Load(); n != appConns {
		t.Fatalf("the app behind picket saw %d more connections", n-appConns)
	}
	if n := good.hits.Load(); n != goodHits {
		t.Fatalf("the backend saw %d more requests", n-goodHits)
	}
}

// rootSet is a root and an issuer under it, as files for a Sentry's credentials directory.
type rootSet struct {
	caPEM, issuerPEM, issuerKeyPEM []byte
	issuerSerial                   string
}

// TestRootRotationAcrossDaprSentry: the trust anchors of picket (its watched file) and of
// daprd's client hold the old and the new root; Dapr's Sentry is switched to a new root and a
// new issuer; picket and daprd's client renew onto the new chain and traffic between them
// never fails. Both roots have the same subject, as every root of a trust domain made by
// Dapr's Sentry or `picket cert --profile sentry` has (O=<trust domain>).
func TestRootRotationAcrossDaprSentry(t *testing.T) {
	t.Run("picket cert credentials", func(t *testing.T) {
		rootRotation(t, func(t *testing.T, dir string) rootSet {
			keys := filepath.Join(dir, "keys")
			picketCredentials(t, dir, keys, "sentry", "localhost", "ecdsa", false)
			return rootSet{readFile(t, filepath.Join(dir, "ca.crt")), readFile(t, filepath.Join(dir, "issuer.crt")),
				readFile(t, filepath.Join(dir, "issuer.key")),
				pemCerts(t, readFile(t, filepath.Join(dir, "issuer.crt")))[0].SerialNumber.String()}
		})
	})
	// Dapr's bundle generator (what Dapr's Sentry and `dapr mtls renew-certificate` use) makes
	// issuers without an authority key identifier. wolfSSL then finds the issuer's root by
	// subject name alone and takes one of the two same-named roots: when it is the other one,
	// the chain fails (wolfSSL error -188) although a root in the anchors signed it. Go (daprd)
	// tries every candidate. Not fixed yet; PICKET_INTEROP_KNOWN_DIFFERENCES=1 runs it.
	t.Run("Dapr-generated credentials", func(t *testing.T) {
		if os.Getenv("PICKET_INTEROP_KNOWN_DIFFERENCES") == "" {
			t.Skip("known difference: two same-subject roots and an issuer without an authority " +
				"key identifier (README, Interop); PICKET_INTEROP_KNOWN_DIFFERENCES=1 runs it")
		}
		rootRotation(t, func(t *testing.T, dir string) rootSet {
			_, key, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			b, err := bundle.GenerateX509(bundle.OptionsX509{X509RootKey: key, TrustDomain: "localhost",
				AllowedClockSkew: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			return rootSet{b.TrustAnchors, b.IssChainPEM, b.IssKeyPEM, b.IssChain[0].SerialNumber.String()}
		})
	})
}

func rootRotation(t *testing.T, makeRoot func(t *testing.T, dir string) rootSet) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	first := makeRoot(t, filepath.Join(dir, "first"))
	next := makeRoot(t, filepath.Join(dir, "next"))
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(creds, "issuer.key"), first.issuerKeyPEM, 0o600)
	writeFile(t, filepath.Join(creds, "issuer.crt"), first.issuerPEM, 0o644)
	writeFile(t, filepath.Join(creds, "ca.crt"), first.caPEM, 0o644)
	oldRoot := first.caPEM
	both := append(append([]byte{}, oldRoot...), next.caPEM...)
	anchors := filepath.Join(dir, "anchors.pem")
	writeFile(t, anchors, both, 0o644)
	// Longer certificates than elsewhere: Dapr's Sentry restarts its server on the switch, and
	// daprd retries a failed renewal only after 10 s; 25 s certificates renewed at half life
	// leave room for that retry.
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, []byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: daprsystem\n"+
		"spec:\n  mtls:\n    enabled: true\n    workloadCertTTL: 24s\n    allowedClockSkew: 1s\n"), 0o644)
	sentry := startDaprSentry(t, creds, "localhost", cfg)

	logs := captureDaprdLogs(t)
	opts := func(appID string) daprdOptions {
		return daprdOptions{appID: appID, sentry: sentry.address(), cpTrustDomain: "localhost", anchors: both}
	}
	frontend, backend := mustDaprd(t, opts("frontend")), mustDaprd(t, opts("backend"))
	backendSrv := spiffeServer(t, backend, "spiffe://public/ns/default/web")
	target := startApp(t)
	inPort, outPort := freePort(t), freePort(t)
	web := startPicketRun(t, "picket-web", sidecarINI(sentry, anchors, inPort, target.port, outPort, backendSrv.port), true)
	toWeb := frontend.h.MTLSClientConfig(mustID(t, "spiffe://public/ns/default/web"))

	newIssuer := next.issuerSerial
	var webIssuer atomic.Value // the serial of the issuer picket presented last
	webIssuer.Store("")
	tr := startTraffic(t, func(i int) error {
		if i%2 == 1 {
			return get(outPort, nil, fmt.Sprintf("/out/%d", i))
		}
		peer, err := getPeer(inPort, toWeb, fmt.Sprintf("/in/%d", i))
		if err == nil && len(peer) > 1 {
			webIssuer.Store(peer[1].SerialNumber.String())
		}
		return err
	})
	waitFor(t, 20*time.Second, "traffic before the switch", func() bool { return tr.ok.Load() >= 10 })
	fseen := frontend.watchSerials(t)
	installedBefore := len(web.installed())

	// Switch Sentry to the new root and issuer.
	writeAtomic(t, filepath.Join(creds, "issuer.key"), next.issuerKeyPEM, 0o600)
	writeAtomic(t, filepath.Join(creds, "issuer.crt"), next.issuerPEM, 0o644)
	writeAtomic(t, filepath.Join(creds, "ca.crt"), next.caPEM, 0o644)

	waitFor(t, 60*time.Second, "picket presenting a certificate from the new issuer", func() bool {
		return webIssuer.Load() == newIssuer
	})
	waitFor(t, 60*time.Second, "daprd's client holding a certificate from the new issuer", func() bool {
		for _, s := range fseen.issuers() {
			if s == newIssuer {
				return true
			}
		}
		return false
	})
	n := tr.ok.Load()
	waitFor(t, 20*time.Second, "traffic after the switch", func() bool { return tr.ok.Load() >= n+10 })
	tr.check(t, 30)
	if len(web.installed()) <= installedBefore {
		t.Fatal("picket installed no identity after the switch")
	}
	if strings.Contains(logs.String(), "Error renewing identity") {
		t.Fatal("daprd's client failed a renewal during the switch")
	}
}
