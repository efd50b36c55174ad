# SPDX-License-Identifier: Apache-2.0
"""DNS names as targets and as Sentry's address, resolved on the event loop (c-ares) against a
real DNS server on loopback: dnsmasq answering from a hosts file with a one-second TTL.

Peers are inbound listeners of the same sidecar on 127.0.0.2 and 127.0.0.3 (one port, two
addresses), each forwarding to its own recording app, so where a connection went is seen in
which app received its bytes."""
import getpass
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import http_get
from harness import Proc, free_port, wait_for
from test_proxy import Recorder

NAME = "peer.picket.test"
SENTRY_NAME = "sentry.picket.test"


def free_dns_port():
    """A port free for TCP and UDP on 127.0.0.1 (dnsmasq listens on both)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class Dns:
    """dnsmasq on 127.0.0.1:port answering only from a hosts file, TTL 1 s."""

    def __init__(self, tmp_path, records):
        self.hosts = tmp_path / "dns-hosts"
        self.port = free_dns_port()
        self.log = tmp_path / "dnsmasq.log"
        self.write(records)
        user = getpass.getuser()
        self.proc = Proc(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                          f"--port={self.port}", "--listen-address=127.0.0.1",
                          "--bind-interfaces", "--no-resolv", "--no-hosts",
                          f"--addn-hosts={self.hosts}", "--local-ttl=1", f"--user={user}",
                          "--pid-file=", "--log-facility=-", "--log-queries"], self.log)
        wait_for(lambda: "started" in self.proc.output() or not self.proc.alive(), 10,
                 what="dnsmasq")
        assert self.proc.alive(), self.proc.output()

    def write(self, records):
        tmp = self.hosts.with_suffix(".new")
        tmp.write_text("".join(f"{ip} {name}\n" for name, ip in records))
        os.replace(tmp, self.hosts)

    def change(self, records):
        """New answers: dnsmasq re-reads its hosts files on SIGHUP."""
        self.write(records)
        self.proc.signal(signal.SIGHUP)

    def stop(self):
        self.proc.stop()


class Mute:
    """A UDP socket that reads every query and never answers."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.queries = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                self.sock.recv(4096)
            except OSError:
                return
            self.queries += 1

    def close(self):
        self.sock.close()


def sections(sentry, dns, peer_port, app_a, app_b, out_port):
    return {"agent": {"app_id": "myapp", "retry_initial": "200ms", "retry_max": "1s"},
            "sentry": {"address": f"{SENTRY_NAME}:{sentry.port}",
                       "trust_anchors_file": sentry.ca_file},
            "proxy": {"workers": 2},
            "dns": {"servers": f"127.0.0.1:{dns.port}", "ttl_min": "1s", "ttl_max": "5s",
                    "timeout": "500ms"},
            "inbound a": {"listen": f"127.0.0.2:{peer_port}", "target": f"127.0.0.1:{app_a.port}"},
            "inbound b": {"listen": f"127.0.0.3:{peer_port}", "target": f"127.0.0.1:{app_b.port}"},
            "outbound peer": {"listen": f"127.0.0.1:{out_port}", "target": f"{NAME}:{peer_port}",
                              "expect_app_id": "myapp"}}


def roundtrip(port, payload, timeout=5):
    """Send payload through the outbound listener; True when the app's echo came back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(payload)
            want = b"echo:" + payload
            got = b""
            while len(got) < len(want):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got == want
    except OSError:
        return False


def received(app, payload):
    with app.lock:
        return any(payload in d for d in app.data)


def wait_received(app, payload):
    """The app records a connection's bytes when it closes: poll until it has."""
    wait_for(lambda: received(app, payload), 10, what=f"{payload!r} at the app")


def dns_status(agent, name):
    code, body = http_get(agent.admin_port, "/status")
    assert code == 200
    return next(d for d in json.loads(body).get("dns", []) if d["name"] == name)


class Setup:
    """A picket sentry, dnsmasq with the given records, two recording apps and one sidecar whose
    outbound listener (out_port) targets NAME:peer_port."""

    def __init__(self, start_sentry, start_agent, tmp_path, records):
        self.app_a, self.app_b = Recorder(), Recorder()
        self.sentry = start_sentry()
        self.dns = Dns(tmp_path, [*records, (SENTRY_NAME, "127.0.0.1")])
        self.peer_port, self.out_port = free_port(), free_port()
        self.name = f"{NAME}:{self.peer_port}"
        self.agent = start_agent(sections(self.sentry, self.dns, self.peer_port, self.app_a,
                                          self.app_b, self.out_port))

    def close(self):
        self.app_a.close()
        self.app_b.close()


@pytest.fixture
def dns_mesh(start_sentry, start_agent, tmp_path):
    made = []

    def make(records):
        made.append(Setup(start_sentry, start_agent, tmp_path, records))
        return made[-1]
    yield make
    for s in made:
        s.close()


def test_name_moves_new_connections_after_its_ttl(dns_mesh):
    s = dns_mesh([(NAME, "127.0.0.2")])
    app_a, app_b, agent, out_port, peer_port = s.app_a, s.app_b, s.agent, s.out_port, s.peer_port
    assert roundtrip(out_port, b"first")
    wait_received(app_a, b"first")
    s.dns.change([(NAME, "127.0.0.3"), (SENTRY_NAME, "127.0.0.1")])
    n = [0]

    def moved():
        n[0] += 1
        payload = f"after-change-{n[0]}".encode()
        if not roundtrip(out_port, payload):
            return False
        wait_for(lambda: received(app_a, payload) or received(app_b, payload), 10,
                 what=f"{payload!r} at an app")
        return received(app_b, payload)
    wait_for(moved, 20, interval=0.2, what="a new connection reaching the new address")
    st = dns_status(agent, f"{NAME}:{peer_port}")
    assert st["addresses"] == f"127.0.0.3:{peer_port}" and st["changes"] >= 2
    assert 1 <= st["ttl"] <= 5
    code, body = http_get(agent.admin_port, "/metrics")
    assert f'picket_dns_answers_total{{name="{NAME}:{peer_port}"}}' in body
    # Sentry's address was a name too, and the identity came through it; the first request
    # waited for the name's first answer instead of failing without one.
    assert dns_status(agent, f"{SENTRY_NAME}:{s.sentry.port}")["answers"] >= 1
    assert "no DNS answer yet" not in agent.proc.output()


def test_a_dead_address_of_a_name_is_skipped(dns_mesh):
    # Nothing listens on 127.0.0.4: each connection that starts there must move on.
    s = dns_mesh([(NAME, "127.0.0.4"), (NAME, "127.0.0.2")])
    app_a, agent, out_port = s.app_a, s.agent, s.out_port
    wait_for(lambda: "127.0.0.4" in dns_status(agent, s.name)["addresses"] and
             "127.0.0.2" in dns_status(agent, s.name)["addresses"], 10,
             what="both addresses in the answer")
    for i in range(6):
        payload = f"conn-{i}".encode()
        assert roundtrip(out_port, payload), f"connection {i} failed"
        wait_received(app_a, payload)
    wait_for(lambda: "trying the next one" in agent.proc.output(), 10,
             what="a connection that moved past the dead address")


def test_a_mute_dns_server_blocks_nothing_and_the_last_answer_stays(dns_mesh):
    s = dns_mesh([(NAME, "127.0.0.2")])
    app_a, agent, out_port, peer_port, dns, name = (s.app_a, s.agent, s.out_port, s.peer_port,
                                                    s.dns, s.name)
    assert roundtrip(out_port, b"before")
    failures_before = dns_status(agent, name)["failures"]
    dns.stop()
    mute = Mute(dns.port)
    try:
        # Lookups now wait for a server that never answers (timeout 500 ms, sent twice), again
        # and again after each TTL; the loop must go on serving meanwhile.
        wait_for(lambda: mute.queries >= 2, 10, what="queries reaching the mute server")
        latencies = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            code, _ = http_get(agent.admin_port, "/healthz")
            latencies.append(time.monotonic() - t0)
            assert code == 200
            time.sleep(0.05)
        # A blocked loop would hold a request for a whole query timeout (500 ms or more); a
        # loaded machine may delay one or two requests past 50 ms on its own.
        assert max(latencies) < 0.5, latencies
        fast = sum(1 for t in latencies if t < 0.05)
        assert fast >= len(latencies) * 0.9, latencies
        st = wait_for(lambda: (lambda s: s if s["failures"] > failures_before else None)(
            dns_status(agent, name)), 10, what="a failed lookup counted")
        assert st["addresses"] == f"127.0.0.2:{peer_port}" and st.get("last_error")
        # The last good answer is still in use.
        assert roundtrip(out_port, b"during")
        wait_received(app_a, b"during")
    finally:
        mute.close()
