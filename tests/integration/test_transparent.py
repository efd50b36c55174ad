# SPDX-License-Identifier: Apache-2.0
"""Transparent mode between two network namespaces the test builds: host A runs a plain HTTP
client and picket, host B a plain HTTP server, picket and a `picket sentry`. The hosts talk over
a veth pair (10.77.0.0/24 and fd77::/64), the firewall rules come from `picket iptables`, and the
client and server know nothing of TLS. A capture on A's end of the veth is the oracle for what
crosses between the hosts; the server's access log for who reached it."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

import pki
from harness import Proc, picket_bin, run, wait_for

TD = "example.test"
A_IP, B_IP = "10.77.0.1", "10.77.0.2"
A_IP6, B_IP6 = "fd77::1", "fd77::2"
APP_PORT, OTHER_PORT = 8080, 9090
SENTRY_PORT, ADMIN_PORT = 50001, 9901
MARK = "0x2a"


def _skip_reason():
    if os.geteuid() != 0:
        return "transparent-mode tests need root (network namespaces and iptables)"
    for tool in ("ip", "iptables", "ip6tables", "iptables-save", "tcpdump", "curl"):
        if shutil.which(tool) is None:
            return f"transparent-mode tests need '{tool}' (scripts/install-deps --test)"
    probe = f"pkprobe{os.getpid()}"
    r = run(["ip", "netns", "add", probe])
    if r.returncode != 0:
        return f"network namespaces are not permitted here: {r.stderr.strip()}"
    try:
        r = run(["ip", "netns", "exec", probe, "iptables", "-w", "-t", "nat", "-S"])
        if r.returncode != 0:
            return f"iptables' nat table is not usable in a namespace: {r.stderr.strip()}"
    finally:
        run(["ip", "netns", "del", probe])
    return None


SKIP = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


def ns_run(ns, *args, check=True, **kw):
    r = run(["ip", "netns", "exec", ns, *args], **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} in {ns}: {r.stdout}{r.stderr}")
    return r


def ns_curl(ns, url, timeout=5):
    """GET url from inside ns; (status, body) or (None, curl's complaint)."""
    r = ns_run(ns, "curl", "-g", "-sS", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}",
               url, check=False)
    if r.returncode != 0:
        return None, r.stderr.strip()
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def metric(ns, name, **labels):
    """One sample of the picket in ns from its admin /metrics (0 when absent)."""
    code, text = ns_curl(ns, f"http://127.0.0.1:{ADMIN_PORT}/metrics")
    assert code == 200, text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


class Net:
    """Two namespaces joined by a veth pair, a Sentry in B, and helpers to run things there."""

    def __init__(self, tmp_path):
        tag = f"{os.getpid()}{int(time.monotonic() * 1000) % 100000}"
        self.a, self.b = f"pkA{tag}", f"pkB{tag}"
        self.tmp = tmp_path
        self.procs = []
        for ns in (self.a, self.b):
            run(["ip", "netns", "add", ns])
        cmds = [
            ["ip", "link", "add", "a0", "netns", self.a, "type", "veth", "peer", "name", "b0",
             "netns", self.b],
            ["ip", "-n", self.a, "addr", "add", f"{A_IP}/24", "dev", "a0"],
            ["ip", "-n", self.b, "addr", "add", f"{B_IP}/24", "dev", "b0"],
            ["ip", "-n", self.a, "addr", "add", f"{A_IP6}/64", "dev", "a0", "nodad"],
            ["ip", "-n", self.b, "addr", "add", f"{B_IP6}/64", "dev", "b0", "nodad"],
        ]
        for ns, dev in ((self.a, "a0"), (self.b, "b0")):
            cmds += [["ip", "-n", ns, "link", "set", "lo", "up"],
                     ["ip", "-n", ns, "link", "set", dev, "up"]]
        for c in cmds:
            r = run(c)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(c)}: {r.stderr}")
        # Our root and issuer, served by a real picket sentry inside B.
        root, rkey = pki.make_root(name=TD)
        issuer, ikey = pki.make_issuer(root, rkey, subject=f"spiffe://{TD}/ns/default/dapr-sentry")
        self.creds = tmp_path / "creds"
        pki.write_creds(str(self.creds), root, issuer, ikey)
        self.ca = str(self.creds / "ca.crt")
        self.sentry = self.spawn(self.b, "sentry", [
            picket_bin(), "sentry", "--issuer-credentials", self.creds, "--port", SENTRY_PORT,
            "--listen-address", "0.0.0.0", "--healthz-port", 50002,
            "--healthz-listen-address", "127.0.0.1", "--metrics-port", 50003,
            "--metrics-listen-address", "127.0.0.1", "--trust-domain", TD])
        wait_for(lambda: self.alive(self.sentry) and
                 ns_curl(self.b, "http://127.0.0.1:50002/healthz")[0] == 200, 20,
                 what="picket sentry /healthz in B")

    def spawn(self, ns, name, args, **kw):
        p = Proc(["ip", "netns", "exec", ns, *args], self.tmp / f"{name}.log", **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def alive(p):
        if not p.alive():
            raise RuntimeError(f"{p.args[3:5]} exited:\n{p.output()[-3000:]}")
        return True

    def picket(self, ns, name, sections):
        """Write name.ini from sections and start `picket run` with it in ns; wait for ready."""
        ini = self.tmp / f"{name}.ini"
        with open(ini, "w") as f:
            for sec, kv in sections.items():
                f.write(f"[{sec}]\n")
                for k, vs in kv.items():
                    for v in (vs if isinstance(vs, list) else [vs]):
                        f.write(f"{k} = {v}\n")
        p = self.spawn(ns, name, [picket_bin(), "run", "-c", ini])
        p.ini = ini
        wait_for(lambda: self.alive(p) and
                 ns_curl(ns, f"http://127.0.0.1:{ADMIN_PORT}/readyz")[0] == 200, 30,
                 what=f"{name} /readyz")
        return p

    def iptables(self, ns, *args):
        return ns_run(ns, picket_bin(), "iptables", *args, check=False)

    def server(self, port=APP_PORT, name="app"):
        """B's plain HTTP app on every address (IPv4 and IPv6) of B; its access log names each
        client address."""
        root = self.tmp / f"www{port}"
        root.mkdir(exist_ok=True)
        (root / "hello.txt").write_text(f"hello from port {port}\n")
        p = self.spawn(self.b, f"{name}{port}", ["python3", "-m", "http.server", port,
                                                  "--bind", "::", "--directory", root])
        wait_for(lambda: self.alive(p) and ns_run(self.b, "ss", "-ltn", check=False).stdout
                 .find(f":{port} ") >= 0, 10, what=f"app on port {port}")
        return p

    def close(self):
        for p in self.procs:
            p.stop()
        for ns in (self.a, self.b):
            run(["ip", "netns", "del", ns])


def client_peers(app):
    """The client addresses in the app's access log."""
    return re.findall(r"^(\S+) - - \[", app.output(), re.M)


@pytest.fixture
def net(tmp_path):
    n = Net(tmp_path)
    yield n
    n.close()


def sidecar_sections(app_id, sentry_host, **extra):
    s = {"agent": {"app_id": app_id, "trust_domain": TD},
         "sentry": {"address": f"{sentry_host}:{SENTRY_PORT}", "control_plane_trust_domain": TD},
         "proxy": {"workers": 1, "mark": MARK},
         "admin": {"listen": f"127.0.0.1:{ADMIN_PORT}"}}
    for k, v in extra.items():
        s.setdefault(k.replace("__", " "), {}).update(v)
    return s


def start_pair(net, a_map=None, a_extra=None, b_inbound=None, unmapped="deny"):
    """B: picket with inbound listeners intercepting APP_PORT; A: picket with transparent
    listeners intercepting all of 10.77.0.0/24 and fd77::/64. Installs both hosts' rules."""
    inbound = {"target": f"127.0.0.1:{APP_PORT}", "intercept_port": APP_PORT,
               "allow_app_id": "client"}
    inbound.update(b_inbound or {})
    b = sidecar_sections("server", "127.0.0.1",
                         inbound__in4=dict(inbound, listen="0.0.0.0:15006"),
                         inbound__in6=dict(inbound, listen="[::]:15006",
                                           target=f"[::1]:{APP_PORT}"))
    for s in ("in4", "in6"):
        b[f"inbound {s}"]["listen"] = "0.0.0.0:15006" if s == "in4" else "[::]:15006"
    b["sentry"]["trust_anchors_file"] = net.ca
    a = sidecar_sections("client", B_IP)
    a["sentry"]["trust_anchors_file"] = net.ca
    a["transparent out4"] = {"listen": "127.0.0.1:15001", "unmapped": unmapped,
                             "map": a_map or [f"{B_IP}/32 {APP_PORT} app=server"],
                             "intercept": "10.77.0.0/24"}
    a["transparent out6"] = {"listen": "[::1]:15001", "unmapped": unmapped,
                             "map": [f"{B_IP6}/128 {APP_PORT} app=server"],
                             "intercept": "fd77::/64"}
    for k, v in (a_extra or {}).items():
        a.setdefault(k, {}).update(v)
    pb = net.picket(net.b, "picket-b", b)
    r = net.iptables(net.b, "install", "-c", pb.ini)
    assert r.returncode == 0, r.stderr
    pa = net.picket(net.a, "picket-a", a)
    r = net.iptables(net.a, "install", "-c", pa.ini)
    assert r.returncode == 0, r.stderr
    return pa, pb


# ---- capture -----------------------------------------------------------------------------------

class Capture:
    """tcpdump on A's veth end, TCP ports APP_PORT and OTHER_PORT only."""

    def __init__(self, net):
        self.file = net.tmp / f"cap{time.monotonic_ns()}.pcap"
        self.proc = net.spawn(net.a, "tcpdump", [
            "tcpdump", "-i", "a0", "--immediate-mode", "-U", "-n", "-s", "0", "-w", self.file,
            f"tcp port {APP_PORT} or tcp port {OTHER_PORT}"])
        self.proc.wait_log(r"listening on a0", timeout=10)

    def stop(self, fins):
        """End the capture once 'fins' flows (directions of connections) have been seen to
        finish, so no packet of theirs is still on its way to the file; return the streams."""
        wait_for(lambda: len(streams(self.file.read_bytes(), finished=True)) >= fins, 10,
                 what=f"{fins} finished flows in the capture")
        self.proc.popen.send_signal(signal.SIGINT)
        self.proc.popen.wait(timeout=10)
        return streams(self.file.read_bytes())


def streams(pcap, finished=False):
    """{(src, sport, dst, dport): bytes} — each direction's TCP payload in sequence order (with
    finished, only the directions whose FIN was captured)."""
    magic = struct.unpack("<I", pcap[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", pcap[20:24])[0]
    assert linktype == 1, f"unexpected link type {linktype}"
    segs, fins = {}, set()
    off = 24
    while off + 16 <= len(pcap):
        incl = struct.unpack(endian + "IIII", pcap[off:off + 16])[2]
        if off + 16 + incl > len(pcap):
            break  # tcpdump is still writing this one
        pkt = pcap[off + 16:off + 16 + incl]
        off += 16 + incl
        ethertype = struct.unpack("!H", pkt[12:14])[0]
        ip = pkt[14:]
        if ethertype == 0x0800 and ip[9] == 6:
            hl = (ip[0] & 0xF) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            src, dst, tcp = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), ip[hl:total]
        elif ethertype == 0x86DD and ip[6] == 6:
            plen = struct.unpack("!H", ip[4:6])[0]
            src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
            tcp = ip[40:40 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        data = tcp[(tcp[12] >> 4) * 4:]
        if tcp[13] & 0x01:
            fins.add((src, sport, dst, dport))
        if data:
            segs.setdefault((src, sport, dst, dport), {})[seq] = data
    out = {}
    for flow, by_seq in segs.items():
        buf, nxt = b"", None
        for seq in sorted(by_seq):
            data = by_seq[seq]
            if nxt is not None and seq < nxt:
                data = data[nxt - seq:]  # a retransmission
            buf += data
            nxt = seq + len(by_seq[seq]) if nxt is None else max(nxt, seq + len(by_seq[seq]))
        out[flow] = buf
    if finished:
        return {f: d for f, d in out.items() if f in fins}
    return out


def tls_records(data):
    """Split a byte stream into TLS records; AssertionError at the first byte that is not one."""
    records, i = [], 0
    while i < len(data):
        assert i + 5 <= len(data), f"truncated record header at {i}: {data[i:i + 16]!r}"
        ctype, major, minor, length = data[i], data[i + 1], data[i + 2], \
            struct.unpack("!H", data[i + 3:i + 5])[0]
        assert ctype in (20, 21, 22, 23) and major == 3 and minor <= 4 and length <= 16384 + 256, \
            f"not a TLS record at {i}: {data[i:i + 32]!r}"
        records.append(ctype)
        i += 5 + length
    assert i == len(data), "last TLS record is cut"
    return records


# ---- tests -------------------------------------------------------------------------------------

def test_transparent_mtls_end_to_end_ipv4_and_ipv6(net):
    app = net.server()
    pa, pb = start_pair(net)
    cap = Capture(net)
    for url in (f"http://{B_IP}:{APP_PORT}/hello.txt", f"http://[{B_IP6}]:{APP_PORT}/hello.txt"):
        for _ in range(3):
            assert ns_curl(net.a, url) == (200, f"hello from port {APP_PORT}\n")
    flows = cap.stop(fins=12)

    # Both directions of all six connections crossed the wire, and all of it was TLS records.
    to_app = [f for f in flows if f[3] == APP_PORT]
    assert len(to_app) == 6, flows.keys()
    assert {f[2] for f in to_app} == {B_IP, B_IP6}
    for flow, data in flows.items():
        recs = tls_records(data)
        assert 23 in recs, f"{flow}: no application data records"
        assert b"HTTP/1." not in data and b"hello from port" not in data
    # The app saw only its own picket (loopback), never host A.
    peers = client_peers(app)
    assert len(peers) == 6 and all(p in ("::ffff:127.0.0.1", "::1", "127.0.0.1") for p in peers), \
        peers
    # One redirected connection per request on A, one mTLS connection per request on B: no loop.
    assert metric(net.a, "picket_listener_connections_total", listener="out4", kind="transparent") == 3
    assert metric(net.a, "picket_listener_connections_total", listener="out6", kind="transparent") == 3
    assert metric(net.b, "picket_listener_connections_total", listener="in4", kind="inbound") == 3
    assert metric(net.b, "picket_listener_connections_total", listener="in6", kind="inbound") == 3
    # A's connection to Sentry (10.77.0.2, inside the intercepted block) kept working because
    # picket marks it: the certificate came from B's Sentry.
    assert re.search(r"identity installed\" .*spiffe_id=spiffe://example.test/ns/default/client",
                     pa.output())


def test_plaintext_to_the_app_port_is_refused_without_permissive(net):
    app = net.server()
    start_pair(net)
    # A client on A that carries picket's mark skips A's redirect and speaks plain HTTP to B.
    r = ns_run(net.a, "python3", "-c", PLAIN_CLIENT, B_IP, str(APP_PORT), check=False)
    assert "HTTP/1" not in r.stdout, r.stdout
    wait_for(lambda: metric(net.b, "picket_listener_handshake_failures_total", listener="in4", kind="inbound",
                            reason="tls") == 1, 10, what="B refuses the plaintext client")
    assert client_peers(app) == []


PLAIN_CLIENT = f"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, 36, {int(MARK, 16)})  # SO_MARK: bypass this host's redirect
s.settimeout(5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(b"GET /hello.txt HTTP/1.0\\r\\nHost: b\\r\\n\\r\\n")
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
sys.stdout.write(data.decode("latin-1"))
"""


def test_wrong_identity_is_refused_both_ways(net):
    app = net.server()
    # A expects another app at B's address: A's picket refuses B's certificate.
    start_pair(net, a_map=[f"{B_IP}/32 {APP_PORT} app=billing"])
    code, _ = ns_curl(net.a, f"http://{B_IP}:{APP_PORT}/hello.txt")
    assert code is None
    assert metric(net.a, "picket_listener_handshake_failures_total", listener="out4", kind="transparent",
                  reason="denied") == 1
    assert client_peers(app) == []


def test_inbound_refuses_a_client_it_does_not_allow(net):
    app = net.server()
    start_pair(net, b_inbound={"allow_app_id": "billing"})
    code, _ = ns_curl(net.a, f"http://{B_IP}:{APP_PORT}/hello.txt")
    assert code is None
    wait_for(lambda: metric(net.b, "picket_listener_handshake_failures_total", listener="in4", kind="inbound",
                            reason="denied") == 1, 10, what="B denies the client")
    assert client_peers(app) == []


def test_unmapped_destination_is_denied_by_default(net):
    other = net.server(OTHER_PORT, name="other")
    start_pair(net)
    code, err = ns_curl(net.a, f"http://{B_IP}:{OTHER_PORT}/hello.txt")
    assert code is None, err
    assert metric(net.a, "picket_listener_handshake_failures_total", listener="out4", kind="transparent",
                  reason="denied") == 1
    assert metric(net.a, "picket_listener_passthrough_total", listener="out4", kind="transparent") == 0
    assert client_peers(other) == []


def test_unmapped_destination_passes_through_when_configured(net):
    other = net.server(OTHER_PORT, name="other")
    pa, _ = start_pair(net, unmapped="passthrough")
    cap = Capture(net)
    assert ns_curl(net.a, f"http://{B_IP}:{OTHER_PORT}/hello.txt") == \
        (200, f"hello from port {OTHER_PORT}\n")
    flows = cap.stop(fins=2)
    # Plaintext on the wire, as asked: the same capture that shows only TLS above sees it.
    assert any(b"GET /hello.txt HTTP/1.1" in d for d in flows.values()), flows
    assert metric(net.a, "picket_listener_passthrough_total", listener="out4", kind="transparent") == 1
    assert re.search(rf"passthrough without TLS\" listener=out4 .*destination={B_IP}:{OTHER_PORT}",
                     pa.output())
    # It went out from picket (host A's address), redirected once: no loop.
    assert client_peers(other) == ["::ffff:" + A_IP]
    assert metric(net.a, "picket_listener_connections_total", listener="out4", kind="transparent") == 1


def test_direct_connection_to_the_transparent_listener_is_refused(net):
    pa, _ = start_pair(net)
    r = ns_run(net.a, "curl", "-sS", "-m", "5", "http://127.0.0.1:15001/", check=False)
    assert r.returncode != 0
    wait_for(lambda: "instead of being redirected" in pa.output(), 10, what="refusal logged")
    assert metric(net.a, "picket_listener_handshake_failures_total", listener="out4", kind="transparent",
                  reason="denied") == 1


def test_permissive_inbound_counts_plaintext_and_tls(net):
    app = net.server()
    start_pair(net, b_inbound={"permissive": "true"})
    assert ns_curl(net.a, f"http://{B_IP}:{APP_PORT}/hello.txt")[0] == 200
    r = ns_run(net.a, "python3", "-c", PLAIN_CLIENT, B_IP, str(APP_PORT))
    assert r.stdout.startswith("HTTP/1.0 200"), r.stdout
    assert metric(net.b, "picket_listener_permissive_total", listener="in4", kind="inbound", protocol="tls") == 1
    assert metric(net.b, "picket_listener_permissive_total", listener="in4", kind="inbound",
                  protocol="plaintext") == 1
    assert all(p in ("::ffff:127.0.0.1", "127.0.0.1") for p in client_peers(app))
    assert len(client_peers(app)) == 2


PARTIAL_HELLO = f"""
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, 36, {int(MARK, 16)})
s.settimeout(10)
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(bytes([22, 3, 1]))  # the start of a TLS record header, then nothing
t0 = time.monotonic()
try:
    got = s.recv(100)
except OSError as e:
    got = repr(e).encode()
print(f"{{time.monotonic() - t0:.2f}} {{got!r}}")
"""


def test_permissive_waits_out_a_partial_client_hello(net):
    app = net.server()
    start_pair(net, b_inbound={"permissive": "true", "handshake_timeout": "1s"})
    r = ns_run(net.a, "python3", "-c", PARTIAL_HELLO, B_IP, str(APP_PORT))
    waited, got = r.stdout.split(" ", 1)
    # Three bytes that may begin a ClientHello are neither TLS nor plaintext yet: picket waits
    # for more, up to the handshake timeout, and then closes the connection (with a reset, as
    # the kernel does for a socket closed with unread bytes).
    assert 0.8 <= float(waited) < 5, r.stdout
    assert got.strip() == "b''" or "Connection reset" in got, r.stdout
    wait_for(lambda: metric(net.b, "picket_listener_handshake_failures_total", listener="in4", kind="inbound",
                            reason="timeout") == 1, 10, what="timeout counted")
    assert metric(net.b, "picket_listener_permissive_total", listener="in4", kind="inbound", protocol="tls") == 0
    assert metric(net.b, "picket_listener_permissive_total", listener="in4", kind="inbound",
                  protocol="plaintext") == 0
    assert client_peers(app) == []


HOLD_OPEN = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
print("connected", flush=True)
t0 = time.monotonic()
try:
    got = s.recv(100)
except OSError as e:
    got = repr(e).encode()
print(f"ended after {time.monotonic() - t0:.1f}s {got!r}", flush=True)
"""


def test_reload_that_remaps_a_destination_closes_its_live_connections(net):
    net.server()
    pa, _ = start_pair(net)
    client = net.spawn(net.a, "holder", ["python3", "-c", HOLD_OPEN, B_IP, APP_PORT])
    client.wait_log(r"connected", timeout=10)
    wait_for(lambda: metric(net.a, "picket_listener_connections_active", listener="out4",
                            kind="transparent") == 1, 10, what="the connection streams")
    # The same destination now has to be another app: the live connection fails the re-check.
    ini = pa.ini.read_text().replace(f"map = {B_IP}/32 {APP_PORT} app=server",
                                     f"map = {B_IP}/32 {APP_PORT} app=billing")
    pa.ini.write_text(ini)
    pa.signal(signal.SIGHUP)
    client.wait_log(r"ended after", timeout=10)
    # (The counters start afresh with the changed listener; the close line tells.)
    pa.wait_log(r"connection closed\" listener=out4 .*reason=untrusted detail=\"peer no longer "
                r"allowed: .*not the expected peer 'spiffe://example.test/ns/default/billing'",
                timeout=10)
    # A destination the new map no longer covers at all ends the same way.
    client = net.spawn(net.a, "holder2", ["python3", "-c", HOLD_OPEN, B_IP, APP_PORT])
    start = len(pa.output())
    assert "ended after" not in client.output()
    pa.ini.write_text(ini.replace(f"map = {B_IP}/32 {APP_PORT} app=billing",
                                  f"map = {B_IP}/32 {APP_PORT} app=server"))
    pa.signal(signal.SIGHUP)
    pa.wait_log(r"configuration reloaded", timeout=10, start=start)
    client.wait_log(r"connected", timeout=10)
    wait_for(lambda: metric(net.a, "picket_listener_connections_active", listener="out4",
                            kind="transparent") == 1, 10, what="the second connection streams")
    start = len(pa.output())
    pa.ini.write_text(ini.replace(f"map = {B_IP}/32 {APP_PORT} app=billing",
                                  f"map = {B_IP}/32 {OTHER_PORT} app=server"))
    pa.signal(signal.SIGHUP)
    client.wait_log(r"ended after", timeout=10)
    pa.wait_log(r"reason=untrusted detail=\"the destination no longer maps to an identity\"",
                timeout=10, start=start)


def _save(ns, tool, backend):
    """iptables-save output without its comment lines and counters (the rules themselves)."""
    out = ns_run(ns, f"{tool}-{backend}-save").stdout
    return [re.sub(r" \[\d+:\d+\]$", "", line) for line in out.splitlines()
            if not line.startswith("#")]


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_iptables_install_is_idempotent_and_remove_restores_the_firewall(net, backend):
    if run(["ip", "netns", "exec", net.a, f"iptables-{backend}", "-t", "nat", "-S"]).returncode:
        pytest.skip(f"iptables-{backend} is not usable here")
    ns = net.a
    # Someone else's rules, in the tables and built-in chains ours use too.
    for tool, addr in (("iptables", "192.0.2.1"), ("ip6tables", "2001:db8::1")):
        for rule in (["-t", "nat", "-A", "OUTPUT", "-d", addr, "-p", "tcp", "-j", "ACCEPT"],
                     ["-t", "nat", "-A", "PREROUTING", "-s", addr, "-j", "RETURN"],
                     ["-t", "filter", "-A", "INPUT", "-s", addr, "-j", "DROP"]):
            ns_run(ns, f"{tool}-{backend}", "-w", *rule)
    before = {t: _save(ns, t, backend) for t in ("iptables", "ip6tables")}
    ini = net.tmp / "rules.ini"
    ini.write_text(f"""[proxy]
mark = {MARK}
[iptables]
exclude_uid = 1337
[transparent out4]
listen = 127.0.0.1:15001
map = {B_IP}/32 {APP_PORT} app=server
exclude = {B_IP}/32 {SENTRY_PORT}
[transparent out6]
listen = [::1]:15001
map = fd77::/64 any
[inbound in4]
listen = 0.0.0.0:15006
target = 127.0.0.1:{APP_PORT}
intercept_port = {APP_PORT}
""")
    r = net.iptables(ns, "install", "-c", ini, "--backend", backend)
    assert r.returncode == 0, r.stderr
    # Installed exactly what --dry-run says (read back with iptables -S).
    chain4 = ns_run(ns, f"iptables-{backend}", "-t", "nat", "-S", "PICKET_OUTPUT").stdout
    assert chain4.splitlines() == [
        "-N PICKET_OUTPUT",
        "-A PICKET_OUTPUT -o lo -j RETURN",
        "-A PICKET_OUTPUT -m mark --mark 0x2a -j RETURN",
        "-A PICKET_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        f"-A PICKET_OUTPUT -d {B_IP}/32 -p tcp -m tcp --dport {SENTRY_PORT} -j RETURN",
        f"-A PICKET_OUTPUT -d {B_IP}/32 -p tcp -m tcp --dport {APP_PORT} -j REDIRECT "
        "--to-ports 15001"]
    chain6 = ns_run(ns, f"ip6tables-{backend}", "-t", "nat", "-S", "PICKET_OUTPUT").stdout
    assert "-A PICKET_OUTPUT -d fd77::/64 -p tcp -j REDIRECT --to-ports 15001" in chain6
    pre = ns_run(ns, f"iptables-{backend}", "-t", "nat", "-S", "PREROUTING").stdout.splitlines()
    assert pre[1] == "-A PREROUTING -p tcp -j PICKET_PREROUTING", pre
    installed = {t: _save(ns, t, backend) for t in ("iptables", "ip6tables")}
    # Again: nothing changes, no jump is duplicated.
    r = net.iptables(ns, "install", "-c", ini, "--backend", backend)
    assert r.returncode == 0, r.stderr
    assert {t: _save(ns, t, backend) for t in ("iptables", "ip6tables")} == installed
    shown = net.iptables(ns, "show", "--backend", backend).stdout
    assert "-A OUTPUT -p tcp -j PICKET_OUTPUT" in shown and "PICKET_PREROUTING" in shown
    # Removal leaves the firewall exactly as it was, foreign rules included.
    r = net.iptables(ns, "remove", "--backend", backend)
    assert r.returncode == 0, r.stderr
    after = {t: _save(ns, t, backend) for t in ("iptables", "ip6tables")}
    assert after == before
    # Removing again is a no-op, and needs no readable picket.ini (systemd's ExecStopPost=
    # passes one anyway).
    r = net.iptables(ns, "remove", "--config", net.tmp / "gone.ini", "--backend", backend)
    assert r.returncode == 0, r.stderr
    assert {t: _save(ns, t, backend) for t in ("iptables", "ip6tables")} == before
