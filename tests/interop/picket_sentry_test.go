// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seedRecipe runs the OpenSSL commands of Dapr's self-hosted mTLS guide (the seed documents) in
// dir and names the results as Sentry expects them.
func seedRecipe(t *testing.T, dir string) {
	t.Helper()
	conf := `[req]
distinguished_name = req_distinguished_name
x509_extensions = v3_req
prompt = no
[req_distinguished_name]
C = US
ST = VA
L = Daprville
O = dapr.io/sentry
OU = dapr.io/sentry
CN = cluster.local
[v3_req]
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = @alt_names
[alt_names]
DNS.1 = cluster.local
`
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "root.conf"), []byte(conf), 0o644)
	writeFile(t, filepath.Join(dir, "issuer.conf"), []byte(strings.Replace(conf,
		"basicConstraints = critical, CA:true", "basicConstraints = critical, CA:true, pathlen:0", 1)), 0o644)
	script := `openssl ecparam -genkey -name prime256v1 | openssl ec -out root.key
openssl req -new -nodes -sha256 -key root.key -out root.csr -config root.conf -extensions v3_req
openssl x509 -req -sha256 -days 365 -in root.csr -signkey root.key -outform PEM -out root.pem -extfile root.conf -extensions v3_req
openssl ecparam -genkey -name prime256v1 | openssl ec -out issuer.key
openssl req -new -sha256 -key issuer.key -out issuer.csr -config issuer.conf -extensions v3_req
openssl x509 -req -in issuer.csr -CA root.pem -CAkey root.key -CAcreateserial -outform PEM -out issuer.pem -days 365 -sha256 -extfile issuer.conf -extensions v3_req
cp root.pem ca.crt && cp issuer.pem issuer.crt
`
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the seed's OpenSSL recipe: %v\n%s", err, out)
	}
}

// picketCredentials makes a root (key kept in keyDir, outside the credentials) and an issuer
// with `picket cert create-root` / `create-issuer`.
func picketCredentials(t *testing.T, creds, keyDir, profile, td, keyType string, reuse bool) {
	t.Helper()
	for _, d := range []string{creds, keyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	root := []string{"cert", "create-root", "--profile", profile, "--trust-domain", td, "--key-type", keyType,
		"--cert", filepath.Join(creds, "ca.crt"), "--key", filepath.Join(keyDir, "ca.key"), "--force"}
	if reuse {
		root = append(root, "--reuse-key")
	}
	runPicket(t, creds, root...)
	runPicket(t, creds, "cert", "create-issuer", "--profile", profile, "--trust-domain", td, "--key-type", keyType,
		"--ca-cert", filepath.Join(creds, "ca.crt"), "--ca-key", filepath.Join(keyDir, "ca.key"),
		"--cert", filepath.Join(creds, "issuer.crt"), "--key", filepath.Join(creds, "issuer.key"), "--force")
}

// TestDaprdWithPicketSentry: daprd's identity client gets its certificate from picket sentry,
// verifying picket sentry's SPIFFE ID as daprd does, renews it, and two such daprd identities
// complete go-spiffe mTLS with each other, before and after the renewal.
func TestDaprdWithPicketSentry(t *testing.T) {
	cases := []struct {
		name string
		td   string
		alg  x509.PublicKeyAlgorithm                         // the issuer's key
		make func(t *testing.T, creds, keys string) []string // extra picket sentry flags
	}{
		{"generated P-256", "localhost", x509.ECDSA, func(t *testing.T, creds, keys string) []string { return nil }},
		{"generated Ed25519", "localhost", x509.Ed25519, func(t *testing.T, creds, keys string) []string {
			return []string{"--key-type", "ed25519"}
		}},
		{"seed OpenSSL recipe", "cluster.local", x509.ECDSA, func(t *testing.T, creds, keys string) []string {
			seedRecipe(t, creds)
			return nil
		}},
		{"step profile P-256", "localhost", x509.ECDSA, func(t *testing.T, creds, keys string) []string {
			picketCredentials(t, creds, keys, "step", "localhost", "ecdsa", false)
			return nil
		}},
		{"step profile Ed25519", "localhost", x509.Ed25519, func(t *testing.T, creds, keys string) []string {
			picketCredentials(t, creds, keys, "step", "localhost", "ed25519", false)
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			creds := filepath.Join(dir, "creds")
			extra := c.make(t, creds, filepath.Join(dir, "keys"))
			sentry := startPicketSentryFlags(t, creds, c.td, sentryConfig(t, dir, ""), extra...)
			logs := captureDaprdLogs(t)
			opts := func(appID string) daprdOptions {
				return daprdOptions{appID: appID, sentry: sentry.address(), cpTrustDomain: c.td,
					anchors: readFile(t, sentry.caFile())}
			}
			a, b := mustDaprd(t, opts("alpha")), mustDaprd(t, opts("beta"))
			sv := a.svid(t)
			if id := sv.ID.String(); id != "spiffe://public/ns/default/alpha" {
				t.Fatalf("daprd got %s", id)
			}
			// daprd 1.18 asks with an Ed25519 key; the issuer signs with its own key type.
			if len(sv.Certificates) < 2 || sv.Certificates[1].PublicKeyAlgorithm != c.alg ||
				sv.Certificates[0].PublicKeyAlgorithm != x509.Ed25519 {
				t.Fatalf("daprd's chain: %d certificates, leaf key %v, issuer key %v (want issuer %v)",
					len(sv.Certificates), sv.Certificates[0].PublicKeyAlgorithm,
					sv.Certificates[len(sv.Certificates)-1].PublicKeyAlgorithm, c.alg)
			}
			srv := spiffeServer(t, b, "spiffe://public/ns/default/alpha")
			toBeta := a.h.MTLSClientConfig(mustID(t, "spiffe://public/ns/default/beta"))
			if err := get(srv.port, toBeta, "/before"); err != nil {
				t.Fatalf("alpha -> beta over go-spiffe mTLS: %v", err)
			}
			seen := a.watchSerials(t)
			waitFor(t, 30*time.Second, "a renewal by daprd's client", func() bool { return seen.count() >= 2 })
			if err := get(srv.port, toBeta, "/after"); err != nil {
				t.Fatalf("alpha -> beta after renewal: %v", err)
			}
			if strings.Contains(logs.String(), "Error renewing identity") {
				t.Fatal("daprd's client failed a renewal")
			}
		})
	}
}

func startPicketSentryFlags(t *testing.T, creds, td, config string, flags ...string) *ca {
	t.Helper()
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &ca{port: freePort(t), healthzPort: freePort(t), credsDir: creds, trustDomain: td}
	args := []string{"sentry", "--issuer-credentials", creds, "--trust-domain", td,
		"--port", fmt.Sprint(c.port), "--listen-address", "127.0.0.1",
		"--healthz-port", fmt.Sprint(c.healthzPort), "--healthz-listen-address", "127.0.0.1",
		"--metrics-port", fmt.Sprint(freePort(t)), "--metrics-listen-address", "127.0.0.1",
		"--config", config}
	c.p = startProc(t, "picket-sentry", nil, picketBin, append(args, flags...)...)
	c.waitHealthy(t)
	return c
}

// TestPicketSentryIssuerRotation: under daprd's client, the root is re-made with the same key
// and subject and a new issuer is put in place (`picket cert create-root --reuse-key`). daprd's
// anchors stay the old root, as a running daprd's do; its renewals keep succeeding with
// certificates from the new issuer, and mTLS between daprd identities never fails.
func TestPicketSentryIssuerRotation(t *testing.T) {
	dir := t.TempDir()
	creds, keys := filepath.Join(dir, "creds"), filepath.Join(dir, "keys")
	picketCredentials(t, creds, keys, "sentry", "localhost", "ecdsa", false)
	sentry := startPicketSentryFlags(t, creds, "localhost", sentryConfig(t, dir, ""))
	oldRoot := readFile(t, sentry.caFile())
	logs := captureDaprdLogs(t)
	opts := func(appID string) daprdOptions {
		return daprdOptions{appID: appID, sentry: sentry.address(), cpTrustDomain: "localhost", anchors: oldRoot}
	}
	a, b := mustDaprd(t, opts("alpha")), mustDaprd(t, opts("beta"))
	srv := spiffeServer(t, b, "spiffe://public/ns/default/alpha")
	toBeta := a.h.MTLSClientConfig(mustID(t, "spiffe://public/ns/default/beta"))
	seen := a.watchSerials(t)
	tr := startTraffic(t, func(i int) error { return get(srv.port, toBeta, fmt.Sprintf("/%d", i)) })

	// The new root and issuer are made aside, then moved in one file at a time.
	next := filepath.Join(dir, "next")
	if err := os.MkdirAll(next, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(next, "ca.crt"), oldRoot, 0o644)
	picketCredentials(t, next, keys, "sentry", "localhost", "ecdsa", true)
	newIssuer := pemCerts(t, readFile(t, filepath.Join(next, "issuer.crt")))[0]
	newRoot := pemCerts(t, readFile(t, filepath.Join(next, "ca.crt")))[0]
	if old := pemCerts(t, oldRoot)[0]; old.SerialNumber.Cmp(newRoot.SerialNumber) == 0 {
		t.Fatal("--reuse-key made the same root certificate")
	}
	for _, f := range []string{"issuer.key", "issuer.crt", "ca.crt"} {
		writeAtomic(t, filepath.Join(creds, f), readFile(t, filepath.Join(next, f)), 0o600)
	}
	waitFor(t, 60*time.Second, "a certificate from the new issuer in daprd's client", func() bool {
		for _, s := range seen.issuers() {
			if s == newIssuer.SerialNumber.String() {
				return true
			}
		}
		return false
	})
	n := seen.count()
	waitFor(t, 30*time.Second, "another renewal after the rotation", func() bool { return seen.count() >= n+1 })
	tr.check(t, 20)
	if strings.Contains(logs.String(), "Error renewing identity") {
		t.Fatal("daprd's client failed a renewal during the rotation")
	}
	if !strings.Contains(sentry.p.output(), "credentials reloaded") {
		t.Fatal("picket sentry did not log the reload")
	}
}

// TestSidecarWithPicketSentry: a picket sidecar and daprd-identified go-spiffe peers, all with
// certificates from picket sentry, talk both ways while everyone renews.
func TestSidecarWithPicketSentry(t *testing.T) {
	dir := t.TempDir()
	sentry := startPicketSentryFlags(t, filepath.Join(dir, "creds"), "localhost", sentryConfig(t, dir, ""))
	runSidecarAgainst(t, sentry, nil, "")
}
