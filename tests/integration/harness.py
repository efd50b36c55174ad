# SPDX-License-Identifier: Apache-2.0
"""Process and network helpers shared by picket's integration tests.

Everything here talks to loopback only. Processes are started with their output sent to a log
file so a failing test can show it, and every wait is a bounded poll, never a fixed sleep."""
import os
import re
import signal
import socket
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def picket_bin():
    """The picket executable under test (PICKET_BIN, else the default build directory)."""
    path = os.environ.get("PICKET_BIN", os.path.join(REPO, "build", "cmd", "picket"))
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"picket binary not found at {path}: build it or set PICKET_BIN")
    return path


def sanitized():
    """True when the picket under test is an AddressSanitizer build (its memory figures then
    include ASan's shadow and quarantine)."""
    with open(picket_bin(), "rb") as f:
        return b"AddressSanitizer" in f.read()


_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, and never handed out before in this
    run (the kernel readily gives the same ephemeral port to consecutive bind-and-close calls,
    so two listeners of one process could otherwise get the same port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll predicate until it returns a true value; return that value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def eventually(check, timeout=10.0, interval=0.05):
    """Run check (a function that asserts) until it passes, and return what it returns. At the
    deadline its last AssertionError is raised as it is, so a failure reads like a plain assert.

    For every assertion on what another process updates in its own time (counters, metrics,
    logs, files, status): a single read may come a moment too early on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Proc:
    """A child process whose stdout and stderr go to a log file."""

    registry = []

    def __init__(self, args, log_path, env=None, cwd=None):
        self.args = [str(a) for a in args]
        self.log_path = str(log_path)
        self.log = open(self.log_path, "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self.popen = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=full_env, cwd=cwd)
        Proc.registry.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10.0, start=0):
        """Wait until the log (from byte offset start) matches the regular expression."""
        rx = re.compile(pattern)

        def found():
            text = self.output()[start:]
            return rx.search(text)
        return wait_for(found, timeout, what=f"log line /{pattern}/ from {self.args[0]}")

    def alive(self):
        return self.popen.poll() is None

    def wait_exit(self, timeout=10.0):
        return self.popen.wait(timeout=timeout)

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout=5.0):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        return self.popen.returncode


def run(args, **kw):
    """Run a command to completion and return the CompletedProcess (text mode)."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
