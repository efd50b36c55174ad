// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process whose output goes to a log file in the test's directory. It is
// stopped (SIGTERM, then SIGKILL after 5 s) when the test ends, and on failure the end of its
// log is printed.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if bin == picketBin {
			// Never a key or a CSR in picket's log, and no sanitizer report (ASan builds).
			out := p.output()
			for _, marker := range []string{"PRIVATE KEY", "BEGIN CERTIFICATE REQUEST",
				"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"} {
				if i := strings.Index(out, marker); i >= 0 {
					t.Errorf("the log of %s contains %q: %.3000s", name, marker, out[i:])
				}
			}
		}
		if t.Failed() {
			out := p.output()
			if len(out) > 6000 {
				out = "..." + out[len(out)-6000:]
			}
			t.Logf("--- log of %s (%s):\n%s", name, strings.Join(cmd.Args, " "), out)
		}
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) stop() {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitLog polls the log, from byte offset start, until re matches; it returns the match.
func (p *proc) waitLog(t *testing.T, re string, timeout time.Duration, start int) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitFor(t, timeout, fmt.Sprintf("/%s/ in the log of %s", re, p.name), func() bool {
		out := p.output()
		if start < len(out) {
			m = rx.FindStringSubmatch(out[start:])
		}
		return m != nil
	})
	return m
}

// waitFor polls cond until it holds or the deadline passes (then the test fails).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a loopback TCP port that was free a moment ago and was not handed out before
// in this run.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsUsed[port] {
			portsUsed[port] = true
			return port
		}
	}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// httpStatus is the status of GET http://127.0.0.1:port/path, or 0 if it could not be had.
func httpStatus(port int, path string) int {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic replaces path in one rename, as a secret or ConfigMap update does.
func writeAtomic(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	writeFile(t, tmp, data, mode)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is an io.Writer safe for concurrent use (a logger's output).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
