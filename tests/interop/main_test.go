// SPDX-License-Identifier: Apache-2.0

// Package interop runs picket against real Dapr and real SPIFFE code: Dapr's own Sentry
// (github.com/dapr/dapr/cmd/sentry, built from the pinned module), daprd's identity client
// (github.com/dapr/dapr/pkg/security) and go-spiffe's mTLS peers. Every case drives the real
// binaries over loopback; the picket under test comes from PICKET_BIN.
package interop

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

var (
	picketBin     string
	daprSentryBin string
)

func TestMain(m *testing.M) {
	picketBin = os.Getenv("PICKET_BIN")
	if picketBin == "" {
		fmt.Fprintln(os.Stderr, "interop: PICKET_BIN is not set: build picket and point PICKET_BIN at cmd/picket")
		os.Exit(2)
	}
	if st, err := os.Stat(picketBin); err != nil || st.Mode()&0o111 == 0 {
		fmt.Fprintf(os.Stderr, "interop: PICKET_BIN=%s is not an executable file\n", picketBin)
		os.Exit(2)
	}
	var err error
	daprSentryBin, err = daprSentry()
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// daprSentry returns the path of Dapr's Sentry built from the module this package pins
// (DAPR_SENTRY_BIN overrides it). The binary is cached outside the source tree, under the user
// cache directory, keyed by go.sum and the Go version, so only a dependency change rebuilds it.
func daprSentry() (string, error) {
	if p := os.Getenv("DAPR_SENTRY_BIN"); p != "" {
		return p, nil
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		return "", fmt.Errorf("reading go.sum (run from tests/interop): %w", err)
	}
	h := sha256.New()
	h.Write(sum)
	h.Write([]byte(runtime.Version()))
	key := hex.EncodeToString(h.Sum(nil))[:16]
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for Dapr's Sentry: %w", err)
	}
	dir := filepath.Join(cache, "picket-interop")
	bin := filepath.Join(dir, "dapr-sentry-"+key)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	tmp := bin + ".tmp"
	cmd := exec.Command(goTool, "build", "-o", tmp, "github.com/dapr/dapr/cmd/sentry")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	fmt.Fprintf(os.Stderr, "interop: building Dapr's Sentry into %s\n", bin)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building github.com/dapr/dapr/cmd/sentry: %w", err)
	}
	return bin, os.Rename(tmp, bin)
}
