# SPDX-License-Identifier: Apache-2.0
"""Life cycle of `picket run`: service manager notifications captured on a test NOTIFY_SOCKET,
SIGHUP with good and broken configurations (listeners added, changed and removed while
unrelated connections stay up), and SIGTERM draining open connections."""
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

from conftest import http_get
from harness import free_port, port_open, wait_for
from test_proxy import Recorder


class NotifySocket:
    """A unix datagram socket playing the service manager: collects every message."""

    def __init__(self, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dir = None
        if abstract:
            name = f"picket-test-{os.getpid()}-{free_port()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            # sun_path holds 108 bytes: pytest's tmp_path can be longer.
            self.dir = tempfile.mkdtemp(prefix="pk-notify-", dir="/tmp")
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.messages = []
        self.lock = threading.Lock()
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode())

    def all(self):
        with self.lock:
            return list(self.messages)

    def wait(self, pattern, timeout=20, start=0):
        rx = re.compile(pattern)
        return wait_for(lambda: next((m for m in self.all()[start:] if rx.search(m)), None),
                        timeout, what=f"notification /{pattern}/")

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify_socket():
    made = []

    def make(abstract=True):
        n = NotifySocket(abstract)
        made.append(n)
        return n
    yield make
    for n in made:
        n.close()


def sentry_sections(sentry, **agent):
    return {"agent": {"app_id": "myapp", **agent},
            "sentry": {"address": f"127.0.0.1:{sentry.port}",
                       "trust_anchors_file": sentry.ca_file},
            "proxy": {"workers": 2}}


def loop_listeners(app_port, in_port, out_port, in_name="in", out_name="out"):
    """An inbound listener to the app and an outbound listener to that inbound listener, in one
    sidecar: a plain client on out_port reaches the app through mTLS with ourselves."""
    return {f"inbound {in_name}": {"listen": f"127.0.0.1:{in_port}",
                                   "target": f"127.0.0.1:{app_port}"},
            f"outbound {out_name}": {"listen": f"127.0.0.1:{out_port}",
                                     "target": f"127.0.0.1:{in_port}",
                                     "expect_app_id": "myapp"}}


def rewrite(agent, sections):
    """Write a new picket.ini for a running agent, keeping its admin address."""
    write_ini(agent.ini, {**sections, "admin": {"listen": f"127.0.0.1:{agent.admin_port}"}})


def write_ini(path, sections):
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write(f"[{sec}]\n")
            for k, v in kv.items():
                f.write(f"{k} = {v}\n")


def echo_roundtrip(sock, payload):
    sock.sendall(payload)
    want = b"echo:" + payload
    got = b""
    deadline = time.monotonic() + 5
    while len(got) < len(want) and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got == want


def connect_echo(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert echo_roundtrip(s, b"hello"), "no echo through the proxy"
    return s


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("abstract", [True, False], ids=["abstract", "path"])
def test_notify_ready_status_watchdog_reload_stopping(start_sentry, start_agent, notify_socket,
                                                     abstract):
    sentry = start_sentry()
    ns = notify_socket(abstract)
    agent = start_agent(sentry_sections(sentry),
                        env={"NOTIFY_SOCKET": ns.address, "WATCHDOG_USEC": "300000"})
    ready = ns.wait(r"^READY=1\n")
    st = agent.status()["identity"]
    assert f"STATUS=ready: {st['spiffe_id']} serial {st['serial']}, expires " in ready
    # Exactly one READY=1 on the way up, before the first watchdog ping or with it.
    assert sum(m.startswith("READY=1") for m in ns.all()) == 1
    # WATCHDOG=1 at half of 0.3 s: several within a second.
    t0 = len(ns.all())
    wait_for(lambda: ns.all()[t0:].count("WATCHDOG=1") >= 3, 5, what="watchdog pings")
    # SIGHUP: RELOADING=1 with the monotonic clock, then READY=1 again.
    mark = len(ns.all())
    agent.proc.signal(signal.SIGHUP)
    reloading = ns.wait(r"^RELOADING=1\nMONOTONIC_USEC=\d+$", start=mark)
    usec = int(reloading.split("=")[-1])
    assert abs(usec / 1e6 - time.monotonic()) < 30
    wait_for(lambda: "READY=1" in ns.all()[mark:], 5, what="READY=1 after the reload")
    # SIGTERM: STOPPING=1 before the process goes.
    mark = len(ns.all())
    agent.proc.signal(signal.SIGTERM)
    assert agent.proc.wait_exit(10) == 0
    ns.wait(r"^STOPPING=1$", timeout=2, start=mark)


def test_notify_status_follows_rotation_and_not_ready_reason(start_sentry, start_agent,
                                                              notify_socket, tmp_path):
    from test_agent import sentry_config
    sentry = start_sentry(sentry_config(tmp_path, "4s"))
    ns = notify_socket()
    agent = start_agent(sentry_sections(sentry, retry_initial="100ms", retry_max="200ms"),
                        env={"NOTIFY_SOCKET": ns.address})
    first = ns.wait(r"^READY=1\n")
    serial = agent.status()["identity"]["serial"]
    assert serial in first
    # A renewal changes the STATUS line: the new serial shows up.
    agent.wait_installed(2, timeout=15)
    new_serial = agent.status()["identity"]["serial"]
    ns.wait(rf"^STATUS=ready: .* serial {new_serial}, ")
    # Sentry gone past expiry: STATUS says why it is not ready (and READY=1 is not repeated).
    sentry.proc.stop()
    ns.wait(r"^STATUS=not ready: identity .* expired at \d+$", timeout=15)
    assert sum(m.startswith("READY=1") for m in ns.all()) == 1


def test_bad_notify_socket_is_a_startup_error(start_sentry, tmp_path):
    from harness import picket_bin, run
    sentry = start_sentry()
    ini = tmp_path / "a.ini"
    write_ini(ini, sentry_sections(sentry))
    res = run([picket_bin(), "run", "-c", ini], env={**os.environ, "NOTIFY_SOCKET": "relative"},
              timeout=10)
    assert res.returncode == 2
    assert "NOTIFY_SOCKET: 'relative' is neither an absolute path nor an @abstract name" in res.stderr


def test_sighup_adds_changes_and_removes_listeners_keeping_connections(start_sentry, start_agent,
                                                                       tmp_path):
    sentry = start_sentry()
    app = Recorder()
    in_port, out_port, extra_port, gone_port = free_port(), free_port(), free_port(), free_port()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, in_port, out_port))
    sections["outbound gone"] = {"listen": f"127.0.0.1:{gone_port}",
                                 "target": f"127.0.0.1:{in_port}", "expect_app_id": "myapp"}
    agent = start_agent(sections)
    # Connections open before the reload, one through each listener that will survive or go.
    kept = connect_echo(out_port)
    on_gone = connect_echo(gone_port)
    before = {l["name"]: l for l in agent.status()["listeners"]}
    # The new file: [outbound out] unchanged, [inbound in] changed (idle timeout), [outbound
    # gone] removed, [outbound extra] added.
    new = sentry_sections(sentry)
    new.update(loop_listeners(app.port, in_port, out_port))
    new["inbound in"]["idle_timeout"] = "1h"
    new["outbound extra"] = {"listen": f"127.0.0.1:{extra_port}",
                             "target": f"127.0.0.1:{in_port}", "expect_app_id": "myapp"}
    rewrite(agent, new)
    mark = len(agent.proc.output())
    agent.proc.signal(signal.SIGHUP)
    agent.proc.wait_log(r"configuration reloaded\" listeners=3 added=1 removed=1 changed=1",
                        start=mark)
    # Ready again only with every listener accepting, the new one included.
    wait_for(agent.ready, 10, what="ready after the reload")
    after = {l["name"]: l for l in agent.status()["listeners"]}
    assert set(after) == {"in", "out", "extra"} and all(l["up"] for l in after.values())
    # The unchanged listener is the same object: its counters go on.
    assert after["out"]["total"] >= before["out"]["total"] == 1
    # Old connections still carry bytes, on the unchanged and on the removed listener.
    assert echo_roundtrip(kept, b"after reload")
    assert echo_roundtrip(on_gone, b"still here")
    # New connections: the added listener works, the removed port refuses, the rest work.
    connect_echo(extra_port).close()
    connect_echo(out_port).close()
    wait_for(lambda: refused(gone_port), 5, what="removed listener's port to refuse")
    kept.close()
    on_gone.close()
    assert re.search(r"listener retired\" kind=outbound name=gone", agent.proc.output()[mark:])


def test_sighup_with_broken_configs_keeps_the_running_one(start_sentry, start_agent, tmp_path):
    sentry = start_sentry()
    app = Recorder()
    in_port, out_port = free_port(), free_port()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, in_port, out_port))
    agent = start_agent(sections)
    conn = connect_echo(out_port)
    good = agent.ini.read_text()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy_port = taken.getsockname()[1]
    cases = [
        # a syntax error: named with file and line
        good + "[inbound broken\n",
        # a bad value
        good.replace("workers = 2", "workers = 2\nshutdown_timeout = forever"),
        # a setting that needs a restart
        good.replace("app_id = myapp", "app_id = otherapp"),
        # a new listener whose port is taken by someone else: nothing is half-applied
        good + f"[outbound busy]\nlisten = 127.0.0.1:{busy_port}\ntarget = 127.0.0.1:{in_port}\n"
               "expect_app_id = myapp\n",
    ]
    expect = [rf"{re.escape(str(agent.ini))}:\d+: ", r"shutdown_timeout",
              r"these settings need a restart: \[agent\] app_id",
              rf"\[outbound busy\] listen 127.0.0.1:{busy_port}: Address already in use"]
    for text, why in zip(cases, expect):
        agent.ini.write_text(text)
        mark = len(agent.proc.output())
        agent.proc.signal(signal.SIGHUP)
        line = agent.proc.wait_log(r"reload refused, keeping the running configuration\" .*",
                                   start=mark).group(0)
        assert re.search(why, line), line
        assert agent.proc.alive() and agent.ready()
        assert [l["name"] for l in agent.status()["listeners"]] == ["in", "out"]
        assert echo_roundtrip(conn, b"unharmed")
        connect_echo(out_port).close()
    taken.close()
    conn.close()
    # And the good file applies after all that.
    agent.ini.write_text(good)
    mark = len(agent.proc.output())
    agent.proc.signal(signal.SIGHUP)
    agent.proc.wait_log(r"configuration reloaded\" listeners=2 added=0 removed=0 changed=0",
                        start=mark)


def test_sighup_adds_the_first_listener_to_a_sidecar_without_any(start_sentry, start_agent):
    sentry = start_sentry()
    app = Recorder()
    agent = start_agent(sentry_sections(sentry))
    assert "listeners" not in agent.status()
    in_port, out_port = free_port(), free_port()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, in_port, out_port))
    rewrite(agent, sections)
    agent.proc.signal(signal.SIGHUP)
    agent.proc.wait_log(r"configuration reloaded\" listeners=2 added=2")
    wait_for(lambda: port_open(out_port) and agent.ready(), 10, what="new listeners")
    connect_echo(out_port).close()


def drain_setup(start_sentry, start_agent, timeout):
    sentry = start_sentry()
    app = Recorder()
    in_port, out_port = free_port(), free_port()
    sections = sentry_sections(sentry)
    sections["proxy"]["shutdown_timeout"] = timeout
    sections.update(loop_listeners(app.port, in_port, out_port))
    agent = start_agent(sections)
    return agent, out_port


def test_sigterm_drains_open_connections_until_they_finish(start_sentry, start_agent):
    agent, out_port = drain_setup(start_sentry, start_agent, "20s")
    conns = [connect_echo(out_port) for _ in range(3)]
    agent.proc.signal(signal.SIGTERM)
    agent.proc.wait_log(r"draining connections\" count=[1-9]\d* timeout=20.000s")
    # No new connections once draining...
    wait_for(lambda: refused(out_port), 5, what="listener closed")
    # ...while the open ones still work both ways.
    for i, c in enumerate(conns):
        assert echo_roundtrip(c, b"during drain %d" % i)
    assert agent.proc.alive()
    t0 = time.monotonic()
    for c in conns:
        c.close()
    assert agent.proc.wait_exit(10) == 0
    # It left as soon as the last connection ended, far before the 20 s timeout.
    assert time.monotonic() - t0 < 5
    assert "shutdown timeout" not in agent.proc.output()


def test_sigterm_closes_what_is_left_at_the_timeout(start_sentry, start_agent):
    agent, out_port = drain_setup(start_sentry, start_agent, "1500ms")
    conn = connect_echo(out_port)
    t0 = time.monotonic()
    agent.proc.signal(signal.SIGTERM)
    assert agent.proc.wait_exit(15) == 0
    elapsed = time.monotonic() - t0
    assert 1.4 <= elapsed < 8, elapsed
    assert "shutdown timeout: closing connections" in agent.proc.output()
    conn.settimeout(5)
    try:
        assert conn.recv(100) == b""
    except ConnectionResetError:
        pass
    conn.close()


def test_sighup_policy_change_closes_connections_it_no_longer_allows(start_sentry, start_agent):
    """[inbound in] keeps its address but now allows only another app: its live connection
    (from ourselves, through [outbound out]) is closed as untrusted, new ones are refused, and
    the listener's sockets were never reopened (same port, no bind error)."""
    sentry = start_sentry()
    app = Recorder()
    in_port, out_port = free_port(), free_port()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, in_port, out_port))
    agent = start_agent(sections)
    conn = connect_echo(out_port)
    new = sentry_sections(sentry)
    new.update(loop_listeners(app.port, in_port, out_port))
    new["inbound in"]["allow_app_id"] = "someone-else"
    rewrite(agent, new)
    mark = len(agent.proc.output())
    agent.proc.signal(signal.SIGHUP)
    agent.proc.wait_log(r"configuration reloaded\" listeners=2 added=0 removed=0 changed=1",
                        start=mark)
    agent.proc.wait_log(r"connection closed\" listener=in .*reason=untrusted", start=mark)
    conn.settimeout(5)
    try:
        assert conn.recv(100) == b""
    except ConnectionResetError:
        pass
    conn.close()
    # A new connection is denied by the new rule, on the same port.
    s = socket.create_connection(("127.0.0.1", out_port), timeout=5)
    s.settimeout(5)
    try:
        s.sendall(b"hello")
        assert s.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    agent.proc.wait_log(r"connection closed\" listener=in .*reason=denied", start=mark)
