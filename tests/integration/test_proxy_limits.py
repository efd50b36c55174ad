# SPDX-License-Identifier: Apache-2.0
"""The proxy under pressure: a handshake flood against the cap, a slow reader behind a fast
writer, and the certificate kinds of the rejection matrix not covered in test_proxy.py."""
import socket
import ssl
import threading
import time

import pytest

import pki
from harness import free_port, sanitized, wait_for
from test_proxy import (TD, Recorder, inbound, pki_env, rejected, rss_kib,  # noqa: F401
                        sidecar, tls_client)


def test_handshake_flood_respects_the_cap_and_keeps_serving(pki_env, start_agent):
    app = Recorder()
    port, listeners = inbound(app.port, max_handshakes="4", handshake_timeout="1500ms")
    agent = sidecar(start_agent, pki_env, "backend", listeners, )
    # 40 connections that never send a ClientHello.
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    peak = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        peak = max(peak, agent.status()["listeners"][0]["handshaking"])
        time.sleep(0.05)
    assert 1 <= peak <= 4, peak
    # A real client still gets through once the stuck handshakes time out.
    t0 = time.monotonic()
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki_env.ca)
    ctx.load_cert_chain(*pki_env.peer("frontend"))
    # It waits in the kernel's backlog behind the stuck ones (4 at a time, 1.5 s each).
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
    s.sendall(b"hi")
    assert s.recv(100) == b"echo:hi"
    s.close()
    assert time.monotonic() - t0 < 30
    assert agent.proc.alive()
    for c in idle:
        c.close()
    st = wait_for(lambda: (lambda l: l if l["timeouts"] >= 4 else None)(
        agent.status()["listeners"][0]), 30, what="timeouts counted")
    assert st["handshaking"] <= 4


def test_slow_reader_keeps_memory_bounded(pki_env, start_agent):
    """The app does not read for a while; the client writes 64 MiB. picket stops reading from
    the client (backpressure), so its memory barely moves, and every byte arrives later."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    release = threading.Event()
    got = []

    def app():
        c, _ = lsock.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        release.wait(30)
        n = 0
        while True:
            chunk = c.recv(1 << 20)
            if not chunk:
                break
            n += len(chunk)
        got.append(n)
        c.close()
    t = threading.Thread(target=app, daemon=True)
    t.start()
    port, listeners = inbound(lsock.getsockname()[1])
    agent = sidecar(start_agent, pki_env, "backend", listeners)
    pid = agent.proc.pid
    s = tls_client(port, *pki_env.peer("frontend"))
    s.settimeout(120)  # the writer is meant to block while the app does not read
    size = 64 << 20
    sent = [0]

    def writer():
        block = b"z" * (1 << 16)
        while sent[0] < size:
            s.sendall(block)
            sent[0] += len(block)
        s.unwrap()
    w = threading.Thread(target=writer, daemon=True)
    before = rss_kib(pid)
    w.start()
    time.sleep(2.0)
    stalled_at = sent[0]
    during = rss_kib(pid)
    assert stalled_at < size, "the writer was never held back"
    # Unbounded buffering would add the whole 64 MiB; ASan's quarantine and shadow memory
    # inflate any growth, so its bound is looser.
    bound = (32 if sanitized() else 8) * 1024
    assert during - before < bound, (before, during, stalled_at)
    release.set()
    w.join(60)
    t.join(60)
    assert got == [size]


def test_more_rejections_and_an_ed25519_peer(pki_env, start_agent):
    app = Recorder()
    port, listeners = inbound(app.port)
    sidecar(start_agent, pki_env, "backend", listeners)
    # A leaf that may sign certificates is refused even without BasicConstraints.
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    key = pki.new_key()
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(pki_env.issuer.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(pki.now() - __import__("datetime").timedelta(minutes=1))
            .not_valid_after(pki.now() + __import__("datetime").timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{TD}/ns/default/signer")]), True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False,
                                         False), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(pki_env.ikey, pki.sig_hash(pki_env.ikey)))
    crt = pki_env.peer("unused")[0]
    with open(crt, "wb") as f:
        f.write(pki.cert_pem(leaf) + pki.cert_pem(pki_env.issuer))
    kpath = crt[:-4] + ".key"
    with open(kpath, "wb") as f:
        f.write(pki.key_pem(key))
    assert rejected(port, app, crt, kpath), "keyCertSign leaf"
    # Dapr 1.18+ issues Ed25519 workload keys: accepted.
    ed = pki.new_key("ed25519")
    s = tls_client(port, *pki_env.peer("edfront", key=ed))
    s.sendall(b"ed")
    assert s.recv(100) == b"echo:ed"
    s.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def test_out_of_descriptors_pauses_accept_without_spinning(pki_env, start_agent):
    """With RLIMIT_NOFILE nearly used up, accept() fails with EMFILE: picket pauses accepting
    instead of spinning on a listener that stays readable, and serves again once descriptors
    are free."""
    app = Recorder()
    port, listeners = inbound(app.port, handshake_timeout="1s")
    agent = sidecar(start_agent, pki_env, "backend", listeners,
                    prefix=["prlimit", "--nofile=40:40"])
    pid = agent.proc.pid
    idle = []
    for _ in range(60):
        try:
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    agent.proc.wait_log(r"accept paused: out of resources", timeout=10)
    t0 = cpu_seconds(pid)
    time.sleep(2.0)
    used = cpu_seconds(pid) - t0
    assert used < 0.5, f"{used:.2f}s of CPU in 2s while out of descriptors"
    for c in idle:
        c.close()
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki_env.ca)
    ctx.load_cert_chain(*pki_env.peer("frontend"))

    def works():
        try:
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
            s.sendall(b"ok")
            reply = s.recv(100)
            s.close()
            return reply == b"echo:ok"
        except OSError:
            return False
    wait_for(works, 20, interval=0.5, what="serving again")
    assert agent.proc.alive()
    # Logged when a pause starts (a worker may pause, serve one, and pause again near the
    # limit), not on each of the ~40 retries a second.
    assert agent.proc.output().count("accept paused") <= 8


def test_close_on_own_expiry_is_an_option(pki_env, start_agent, tmp_path):
    """With 4 s certificates rotating at half-life, a connection on a listener with
    close_on_own_expiry closes when the identity it started with expires; on a listener
    without it the connection lives on (the peer's certificate is valid for an hour)."""
    cfg = tmp_path / "ttl.yaml"
    cfg.write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n"
                   "  name: daprsystem\nspec:\n  mtls:\n    workloadCertTTL: \"4s\"\n"
                   "    allowedClockSkew: \"0s\"\n")
    from harness import Proc
    pki_env.sentry.proc.stop()
    pki_env.sentry.proc = Proc(pki_env.sentry.proc.args + [f"--config={cfg}"],
                               tmp_path / "sentry-ttl.log")
    pki_env.sentry.wait_healthy()
    app = Recorder()
    strict_port, lenient_port = free_port(), free_port()
    agent = sidecar(start_agent, pki_env, "backend", {
        "inbound strict": {"listen": f"127.0.0.1:{strict_port}",
                           "target": f"127.0.0.1:{app.port}", "close_on_own_expiry": "true"},
        "inbound lenient": {"listen": f"127.0.0.1:{lenient_port}",
                            "target": f"127.0.0.1:{app.port}"}})
    not_after = agent.status()["identity"]["not_after"]
    peer = pki_env.peer("frontend")
    strict, lenient = tls_client(strict_port, *peer), tls_client(lenient_port, *peer)
    for s in (strict, lenient):
        s.sendall(b"a")
        assert s.recv(100) == b"echo:a"
    time.sleep(max(0, not_after - time.time()) + 1.5)
    strict.settimeout(2)
    assert strict.recv(100) == b""
    lenient.sendall(b"b")
    assert lenient.recv(100) == b"echo:b"
    lenient.close()
    agent.proc.wait_log(r"listener=strict .*reason=own_expired", timeout=5)


def test_unix_sockets_on_both_ends(pki_env, start_agent, tmp_path):
    """The app listens on a unix socket behind the inbound listener, and the client app reaches
    the outbound listener through a unix socket."""
    app_path = str(tmp_path / "app.sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(app_path)
    lsock.listen(4)

    def app():
        c, _ = lsock.accept()
        c.sendall(b"unix:" + c.recv(100))
        c.close()
    threading.Thread(target=app, daemon=True).start()
    bport = free_port()
    sidecar(start_agent, pki_env, "backend",
            {"inbound web": {"listen": f"127.0.0.1:{bport}", "target": f"unix:{app_path}"}})
    out_path = str(tmp_path / "out.sock")
    sidecar(start_agent, pki_env, "frontend",
            {"outbound backend": {"listen": f"unix:{out_path}", "target": f"127.0.0.1:{bport}",
                                  "expect_app_id": "backend"}})
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(5)
    c.connect(out_path)
    c.sendall(b"hello")
    data = b""
    while True:
        chunk = c.recv(100)
        if not chunk:
            break
        data += chunk
    assert data == b"unix:hello"


def test_proxy_protocol_v2_tells_the_app_who_called(pki_env, start_agent):
    """With proxy_protocol = true the app first receives a PROXY v2 header carrying the
    client's address and, in a TLV of type 0xE0, the peer's SPIFFE ID."""
    import struct
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    got = []

    def app():
        c, _ = lsock.accept()
        c.settimeout(5)
        data = b""
        while len(data) < 16 or len(data) < 16 + struct.unpack("!H", data[14:16])[0] + 4:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        got.append(data)
        c.close()
    t = threading.Thread(target=app, daemon=True)
    t.start()
    port, listeners = inbound(lsock.getsockname()[1], proxy_protocol="true")
    sidecar(start_agent, pki_env, "backend", listeners)
    s = tls_client(port, *pki_env.peer("frontend"))
    client_port = s.getsockname()[1]
    s.sendall(b"body")
    t.join(10)
    s.close()
    data = got[0]
    assert data[:12] == b"\r\n\r\n\x00\r\nQUIT\n"
    assert data[12] == 0x21 and data[13] == 0x11  # v2 PROXY, TCP over IPv4
    length = struct.unpack("!H", data[14:16])[0]
    src, dst, sport, dport = struct.unpack("!4s4sHH", data[16:28])
    assert socket.inet_ntoa(src) == "127.0.0.1" and sport == client_port and dport == port
    tlvs, i = {}, 28
    while i < 16 + length:
        typ, ln = data[i], struct.unpack("!H", data[i + 1:i + 3])[0]
        tlvs[typ] = data[i + 3:i + 3 + ln]
        i += 3 + ln
    assert tlvs[0xE0] == f"spiffe://{TD}/ns/default/frontend".encode()
    assert data[16 + length:] == b"body"


def test_trust_anchor_change_closes_only_peers_that_no_longer_chain(pki_env, start_agent,
                                                                     tmp_path):
    """Two live streams, one from a peer under a second root that the anchors file trusts at
    first. When that root leaves the file, its stream is closed (reason untrusted) and the
    other one carries on; a new connection from the removed root is refused."""
    other_root, other_rkey = pki.make_root(name=TD)
    other_issuer, other_ikey = pki.make_issuer(other_root, other_rkey)
    with open(pki_env.ca, "rb") as f:
        ours = f.read()
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(ours + pki.cert_pem(other_root))
    app = Recorder()
    port, listeners = inbound(app.port)
    sections = {"agent": {"app_id": "backend", "trust_domain": TD},
                "sentry": {"address": f"127.0.0.1:{pki_env.sentry.port}",
                           "trust_anchors_file": anchors, "control_plane_trust_domain": TD},
                "proxy": {"workers": 1}}
    sections.update(listeners)
    agent = start_agent(sections)
    foreign = tls_client(port, *pki_env.peer("foreign", issuer=other_issuer, ikey=other_ikey))
    native = tls_client(port, *pki_env.peer("frontend"))
    for s in (foreign, native):
        s.sendall(b"a")
        assert s.recv(100) == b"echo:a"

    mark = len(agent.proc.output())
    tmp = tmp_path / "anchors.tmp"
    tmp.write_bytes(ours)
    tmp.rename(anchors)
    agent.proc.wait_log(r"identity installed\" reason=trust-anchors", timeout=15, start=mark)
    agent.proc.wait_log(r"connections re-checked\" worker=0 checked=2 closed=1", timeout=10,
                        start=mark)
    agent.proc.wait_log(r"connection closed\" .*peer_id=spiffe://example.test/ns/default/"
                        r"foreign.*reason=untrusted detail=\"peer no longer chains to the "
                        r"trust anchors", timeout=10, start=mark)
    # The closed stream ends with close_notify (a clean EOF), the other still echoes.
    foreign.settimeout(5)
    assert foreign.recv(100) == b""
    native.sendall(b"b")
    assert native.recv(100) == b"echo:b"
    # A new connection under the removed root does not get in.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        s = tls_client(port, *pki_env.peer("foreign2", issuer=other_issuer, ikey=other_ikey))
        s.sendall(b"c")
        assert s.recv(100) == b""  # TLS 1.3: the refusal arrives after the client's Finished
        raise ConnectionError("closed")
    foreign.close()
    native.close()


def _leaf(issuer, ikey, uri, ku=None, eku=None, extra_ext=()):
    """A Sentry-profile leaf with the key usage and extended key usage given (None = omit)."""
    import datetime
    from cryptography import x509
    key = pki.new_key()
    b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(pki.now() - datetime.timedelta(minutes=1))
         .not_valid_after(pki.now() + datetime.timedelta(hours=1))
         .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                        critical=True))
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    for ext, crit in extra_ext:
        b = b.add_extension(ext, critical=crit)
    return b.sign(ikey, pki.sig_hash(ikey)), key


def _ca(parent, parent_key, name, not_before=None, not_after=None, constraints=None):
    import datetime
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    key = pki.new_key()
    nb = not_before or pki.now() - datetime.timedelta(minutes=5)
    na = not_after or nb + datetime.timedelta(days=30)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(parent.subject if parent is not None else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                      False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    if constraints is not None:
        b = b.add_extension(constraints, critical=True)
    cert = b.sign(parent_key if parent_key is not None else key,
                  pki.sig_hash(parent_key if parent_key is not None else key))
    return cert, key


def _write_peer(tmp_path, name, leaf, key, chain):
    crt, k = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    crt.write_bytes(pki.cert_pem(leaf) + b"".join(pki.cert_pem(c) for c in chain))
    k.write_bytes(pki.key_pem(key))
    return str(crt), str(k)


def test_rejection_matrix_validity_usage_constraints_and_size(pki_env, start_agent, tmp_path):
    """TEST-CATALOGUE A05 (every level), A07 (EKU), A08 (name constraints), A09 (depth and
    size), and key usage without digitalSignature: each refused with nothing reaching the app;
    the accepted variants get through. The listener also trusts other.test, so that a name
    constraint, not the trust-domain rule, is what refuses the constrained issuer's leaf."""
    import datetime
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
    now = pki.now()
    # Anchors: our root plus a second one that has expired, and one not yet valid.
    dead_root, dead_rkey = _ca(None, None, "dead root", now - datetime.timedelta(days=20),
                               now - datetime.timedelta(days=1))
    young_root, young_rkey = _ca(None, None, "young root", now + datetime.timedelta(days=1),
                                 now + datetime.timedelta(days=20))
    with open(pki_env.ca, "rb") as f:
        anchors = f.read()
    (tmp_path / "anchors.pem").write_bytes(anchors + pki.cert_pem(dead_root) +
                                           pki.cert_pem(young_root))
    app = Recorder()
    port, listeners = inbound(app.port, allow_trust_domain=TD)
    listeners["inbound web"]["allow_trust_domain"] = [TD, "other.test"]
    sections = {"agent": {"app_id": "backend", "trust_domain": TD},
                "sentry": {"address": f"127.0.0.1:{pki_env.sentry.port}",
                           "trust_anchors_file": tmp_path / "anchors.pem",
                           "control_plane_trust_domain": TD},
                "proxy": {"workers": 1}}
    sections.update(listeners)
    agent = start_agent(sections)
    me = f"spiffe://{TD}/ns/default/frontend"
    iss, ikey = pki_env.issuer, pki_env.ikey
    ds = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    cases, accepted = {}, {}

    def add(table, name, leaf, key, chain):
        table[name] = _write_peer(tmp_path, name.replace(" ", "_"), leaf, key, chain)

    # Validity at each level of the chain.
    young_iss, young_ikey = _ca(pki_env.root, pki_env.rkey, "young issuer",
                                now + datetime.timedelta(hours=1), now + datetime.timedelta(days=9))
    add(cases, "issuer not yet valid", *_leaf(young_iss, young_ikey, me, ds), [young_iss])
    dead_iss, dead_ikey = _ca(dead_root, dead_rkey, "under dead root",
                              now - datetime.timedelta(days=10), now + datetime.timedelta(days=9))
    add(cases, "root expired", *_leaf(dead_iss, dead_ikey, me, ds), [dead_iss])
    yr_iss, yr_ikey = _ca(young_root, young_rkey, "under young root")
    add(cases, "root not yet valid", *_leaf(yr_iss, yr_ikey, me, ds), [yr_iss])
    # Key usage and extended key usage.
    add(cases, "key usage without digitalSignature", *_leaf(
        iss, ikey, me, x509.KeyUsage(False, False, True, False, False, False, False, False,
                                     False)), [iss])
    add(cases, "EKU serverAuth only", *_leaf(iss, ikey, me, ds, [EKU.SERVER_AUTH]), [iss])
    add(cases, "EKU codeSigning", *_leaf(iss, ikey, me, ds, [EKU.CODE_SIGNING]), [iss])
    add(accepted, "EKU any", *_leaf(iss, ikey, me, ds, [x509.ObjectIdentifier("2.5.29.37.0")]),
        [iss])
    add(accepted, "no EKU", *_leaf(iss, ikey, me, ds), [iss])
    add(accepted, "no key usage", *_leaf(iss, ikey, me, None, [EKU.CLIENT_AUTH]), [iss])
    # Name constraints: an issuer limited to URIs of example.test.
    nc = x509.NameConstraints(permitted_subtrees=[x509.UniformResourceIdentifier(TD)],
                              excluded_subtrees=None)
    nc_iss, nc_ikey = _ca(pki_env.root, pki_env.rkey, "constrained issuer", constraints=nc)
    add(cases, "name constraint violated", *_leaf(
        nc_iss, nc_ikey, "spiffe://other.test/ns/default/frontend", ds), [nc_iss])
    add(accepted, "name constraint kept", *_leaf(nc_iss, nc_ikey, me, ds), [nc_iss])
    # Depth: 12 intermediates under our root.
    parent, pkey, chain = pki_env.root, pki_env.rkey, []
    for i in range(12):
        parent, pkey = _ca(parent, pkey, f"level {i}")
        chain.insert(0, parent)
    add(cases, "12 intermediates", *_leaf(parent, pkey, me, ds), chain)
    # Size: a leaf carrying a 60 KB extension, and a Certificate message of about 1 MB.
    blob = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"),
                                      b"\x04\x82\xea\x60" + b"A" * 60000)
    add(cases, "60 KB extension", *_leaf(iss, ikey, me, ds, extra_ext=[(blob, False)]), [iss])
    add(cases, "1 MB Certificate message", *_leaf(iss, ikey, me, ds), [iss] * 1700)

    for name, (crt, key) in cases.items():
        assert rejected(port, app, crt, key), name
    for name, (crt, key) in accepted.items():
        s = tls_client(port, crt, key)
        s.sendall(b"ok")
        assert s.recv(100) == b"echo:ok", name
        s.close()
    assert agent.proc.alive()
    st = agent.status()["listeners"][0]
    assert st["handshake_failed"] + st["denied"] >= len(cases)


def _s_client(port, cert, key, ca, *extra, lines=(b"hi\n",), quiet=True):
    """openssl s_client writing lines one by one (0.3 s apart) and stopped 1 s after the last;
    returns everything it printed."""
    import subprocess
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-cert", cert,
                          "-cert_chain", cert, "-key", key, "-CAfile", ca, *(["-quiet"] if quiet else []), *extra],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in lines:
            time.sleep(0.3)
            p.stdin.write(line)
            p.stdin.flush()
        time.sleep(1)
    except BrokenPipeError:
        pass
    p.kill()
    out, _ = p.communicate()
    return out


def test_tls_protocol_surface(pki_env, start_agent):
    """TEST-CATALOGUE C01, C02, C05: by default only TLS 1.3 with its AEAD suites and the
    configured groups (X25519, P-256); with allow_tls12 TLS 1.2 only with ECDHE AEAD suites
    and no renegotiation; every refused client leaves the app untouched."""
    cert, key = pki_env.peer("frontend")
    app = Recorder()
    port, listeners = inbound(app.port)
    sidecar(start_agent, pki_env, "backend", listeners)
    refused = [["-tls1_2"], ["-tls1_1"], ["-tls1"],
               ["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256"],
               ["-tls1_3", "-groups", "ffdhe2048"], ["-tls1_3", "-groups", "secp384r1"],
               ["-tls1_3", "-groups", "brainpoolP256r1"]]
    for extra in refused:
        out = _s_client(port, cert, key, pki_env.ca, *extra)
        assert b"echo:" not in out, (extra, out[-300:])
    time.sleep(0.2)
    assert app.conns == [] and app.total_bytes() == 0
    for extra in (["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
                  ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
                  ["-tls1_3", "-groups", "P-256"]):
        out = _s_client(port, cert, key, pki_env.ca, *extra)
        assert b"echo:hi" in out, (extra, out[-300:])

    # TLS 1.2 by option: AEAD with ECDHE only, and renegotiation refused.
    app12 = Recorder()
    port12, listeners12 = inbound(app12.port)
    agent12 = sidecar(start_agent, pki_env, "backend12", listeners12, allow_tls12="true")
    out = _s_client(port12, cert, key, pki_env.ca, "-tls1_2")
    assert b"echo:hi" in out, out[-300:]
    for cipher in ("AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256"):
        out = _s_client(port12, cert, key, pki_env.ca, "-tls1_2", "-cipher", cipher)
        assert b"echo:" not in out, cipher
    # 'R' on its own line makes s_client renegotiate: refused (the connection ends), and the
    # app never sees the line after it.
    mark = len(agent12.proc.output())
    out = _s_client(port12, cert, key, pki_env.ca, "-tls1_2", quiet=False,
                    lines=(b"one\n", b"R\n", b"two\n"))
    assert b"echo:one" in out and b"echo:two" not in out, out[-400:]
    agent12.proc.wait_log(r"connection closed\" listener=web .*reason=tls_error", timeout=5,
                          start=mark)
    assert agent12.proc.alive()
    with app12.lock:
        assert all(b"two" not in d for d in app12.data)
