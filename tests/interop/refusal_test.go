// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
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
