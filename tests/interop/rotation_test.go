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
		rootRotation(t, startDaprSentry, picketRootSet)
	})
	// Dapr's bundle generator (what Dapr's Sentry and `dapr mtls renew-certificate` use) makes
	// issuers without an authority key identifier, under roots that all have the subject
	// O=<trust domain>: wolfSSL finds such an issuer's root by name alone, so picket must check
	// the chain against each root of that name.
	t.Run("Dapr-generated credentials", func(t *testing.T) {
		rootRotation(t, startDaprSentry, func(t *testing.T, dir string) rootSet {
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

// TestRootRotationAcrossPicketSentry: the same with picket sentry as the CA, switched to a root
// with another key.
func TestRootRotationAcrossPicketSentry(t *testing.T) {
	rootRotation(t, func(t *testing.T, creds, td, config string) *ca {
		return startPicketSentryFlags(t, creds, td, config)
	}, picketRootSet)
}

// picketRootSet makes a root (new key, O=localhost) and an issuer with `picket cert`.
func picketRootSet(t *testing.T, dir string) rootSet {
	keys := filepath.Join(dir, "keys")
	picketCredentials(t, dir, keys, "sentry", "localhost", "ecdsa", false)
	return rootSet{readFile(t, filepath.Join(dir, "ca.crt")), readFile(t, filepath.Join(dir, "issuer.crt")),
		readFile(t, filepath.Join(dir, "issuer.key")),
		pemCerts(t, readFile(t, filepath.Join(dir, "issuer.crt")))[0].SerialNumber.String()}
}

func rootRotation(t *testing.T, start func(t *testing.T, creds, td, config string) *ca,
	makeRoot func(t *testing.T, dir string) rootSet) {
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
	sentry := start(t, creds, "localhost", cfg)

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
