# SPDX-License-Identifier: Apache-2.0
"""What picket trusts: only CA certificates are trust anchors (wherever the anchors come from),
and each handshake is decided on the chain that peer sent plus the configured anchors, at that
moment, with nothing remembered from earlier peers."""
import datetime
import os
import signal
import socket
import ssl
import threading
import subprocess

import pki
from harness import Proc, free_port, picket_bin, wait_for
from test_proxy import TD, Recorder, inbound, pki_env, sidecar, tls_client  # noqa: F401


def write_anchors(path, *certs):
    with open(path, "wb") as f:
        f.write(b"".join(pki.cert_pem(c) for c in certs))


def echo_ok(port, cert, key, ca=None):
    s = tls_client(port, cert, key, ca=ca)
    s.sendall(b"ping")
    got = s.recv(100)
    s.close()
    return got == b"echo:ping"


def refused(port, app, cert, key):
    """A TLS connection with cert fails and the app sees no new connection and no new byte."""
    # Earlier connections record their bytes when they end: let them settle first.
    wait_for(lambda: len(app.data) == len(app.conns), 10, what="app connections finished")
    conns, total = len(app.conns), app.total_bytes()
    try:
        s = tls_client(port, cert, key)
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        failed = s.recv(100) == b""
        s.close()
    except (ssl.SSLError, OSError):
        failed = True
    return failed and len(app.conns) == conns and app.total_bytes() == total


def leaf_and_key(env, name):
    key = pki.new_key()
    return pki.make_leaf(env.issuer, env.ikey, f"spiffe://{TD}/ns/default/{name}", key=key), key


def test_leaf_in_anchors_file_is_refused_at_start(pki_env, start_agent, tmp_path):
    leaf, _ = leaf_and_key(pki_env, "pasted")
    anchors = tmp_path / "anchors.pem"
    write_anchors(anchors, pki_env.root, leaf)
    port, listeners = inbound(Recorder().port)
    sections = {"agent": {"app_id": "backend", "trust_domain": TD},
                "sentry": {"address": f"127.0.0.1:{pki_env.sentry.port}",
                           "trust_anchors_file": str(anchors),
                           "control_plane_trust_domain": TD}}
    sections.update(listeners)
    agent = start_agent(sections, wait_ready=False)
    agent.proc.wait_exit(20)
    out = agent.proc.output()
    assert f"{anchors} certificate #2" in out, out
    assert "not a CA certificate" in out, out
    assert not agent.proc.alive()


def test_leaf_in_dapr_trust_anchors_is_refused_at_start(pki_env, start_agent, tmp_path):
    leaf, _ = leaf_and_key(pki_env, "pasted")
    env = dict(os.environ)
    env["DAPR_TRUST_ANCHORS"] = (pki.cert_pem(leaf) + pki.cert_pem(pki_env.root)).decode()
    sections = {"agent": {"app_id": "backend", "trust_domain": TD},
                "sentry": {"address": f"127.0.0.1:{pki_env.sentry.port}",
                           "control_plane_trust_domain": TD}}
    agent = start_agent(sections, env=env, wait_ready=False)
    agent.proc.wait_exit(20)
    out = agent.proc.output()
    assert "DAPR_TRUST_ANCHORS certificate #1" in out, out
    assert "not a CA certificate" in out, out


def test_leaf_added_on_reload_is_refused_and_the_old_anchors_keep_serving(
        pki_env, start_agent, tmp_path):
    """The attack: a workload certificate whose key we hold is added to the anchors file. It must
    not become a root: a certificate it 'issues' for any ID stays refused, and the old anchors
    keep serving."""
    app = Recorder()
    anchors = tmp_path / "anchors.pem"
    write_anchors(anchors, pki_env.root)
    port, listeners = inbound(app.port)
    sections = {"agent": {"app_id": "backend", "trust_domain": TD},
                "sentry": {"address": f"127.0.0.1:{pki_env.sentry.port}",
                           "trust_anchors_file": str(anchors),
                           "control_plane_trust_domain": TD},
                "proxy": {"workers": 2}}
    sections.update(listeners)
    agent = start_agent(sections)
    leaf, leaf_key = leaf_and_key(pki_env, "pasted")
    write_anchors(anchors, pki_env.root, leaf)
    agent.proc.signal(signal.SIGHUP)
    agent.proc.wait_log(r"trust anchors refused, keeping the current set", 20)
    assert f"{anchors} certificate #2" in agent.proc.output()
    # A certificate "issued" by the pasted leaf, sent with it: refused.
    minted_key = pki.new_key()
    minted = pki.make_leaf(leaf, leaf_key, f"spiffe://{TD}/ns/default/admin", key=minted_key)
    crt, key = tmp_path / "minted.crt", tmp_path / "minted.key"
    crt.write_bytes(pki.cert_pem(minted) + pki.cert_pem(leaf))
    key.write_bytes(pki.key_pem(minted_key))
    assert refused(port, app, str(crt), str(key))
    # The old anchors still serve.
    assert echo_ok(port, *pki_env.peer("frontend"))


def test_sentry_refuses_a_leaf_in_ca_crt(start_sentry, tmp_path):
    root, rkey = pki.make_root(name=TD)
    issuer, ikey = pki.make_issuer(root, rkey, subject=f"spiffe://{TD}/ns/default/dapr-sentry")
    # A self-signed workload certificate: passes the self-signed check, is no CA.
    self_key = pki.new_key()
    self_leaf = pki.make_leaf(x509_name_holder(), self_key, f"spiffe://{TD}/ns/default/x",
                              key=self_key)
    creds = tmp_path / "creds"
    pki.write_creds(str(creds), root, issuer, ikey, extra_roots=(self_leaf,))
    s = start_sentry(creds_dir=str(creds), trust_domain=TD, wait=False)
    s.proc.wait_exit(20)
    out = s.proc.output()
    assert "ca.crt certificate #2" in out, out
    assert "not a CA certificate" in out, out


def x509_name_holder():
    """Something with an empty .subject, for a self-signed leaf in make_leaf."""
    from cryptography import x509
    return type("Empty", (), {"subject": x509.Name([])})()


def test_an_intermediate_alone_is_a_trust_anchor_that_pins_its_issuer(pki_env, start_agent,
                                                                       tmp_path):
    """The documented choice: a CA that is not self-signed is accepted as a trust anchor (RFC
    5280 path validation, Go's x509 with it in the root pool). Only its own leaves pass; a
    sibling issuer under the same root does not."""
    app = Recorder()
    anchors = tmp_path / "anchors.pem"
    write_anchors(anchors, pki_env.issuer)
    port, listeners = inbound(app.port)
    env = type("E", (), {})()
    env.sentry, env.ca = pki_env.sentry, str(anchors)
    sidecar(start_agent, env, "backend", listeners)
    assert echo_ok(port, *pki_env.peer("frontend"))
    sibling, skey = pki.make_issuer(pki_env.root, pki_env.rkey, subject="sibling")
    assert refused(port, app, *pki_env.peer("f2", issuer=sibling, ikey=skey))


# ---- each handshake on its own chain: nothing remembered from earlier peers ----

def chain_files(tmp_path, name, leaf, key, issuer):
    """name-chain.crt (leaf + issuer), name-alone.crt (the leaf only) and name.key."""
    with_chain, alone = tmp_path / f"{name}-chain.crt", tmp_path / f"{name}-alone.crt"
    with_chain.write_bytes(pki.cert_pem(leaf) + pki.cert_pem(issuer))
    alone.write_bytes(pki.cert_pem(leaf))
    k = tmp_path / f"{name}.key"
    k.write_bytes(pki.key_pem(key))
    os.chmod(k, 0o600)
    return str(with_chain), str(alone), str(k)


def issued(env, tmp_path, name, uri, not_after=None):
    """An intermediate of its own under the root (expiring at not_after) and a leaf under it
    valid for an hour: the files of chain_files."""
    now = pki.now()
    inter, ikey = pki.make_issuer(env.root, env.rkey, subject=f"{name} issuing CA",
                                  not_before=now - datetime.timedelta(minutes=5),
                                  not_after=not_after or now + datetime.timedelta(days=1))
    key = pki.new_key()
    leaf = pki.make_leaf(inter, ikey, uri, key=key, not_before=now - datetime.timedelta(minutes=1),
                         not_after=now + datetime.timedelta(hours=1))
    return chain_files(tmp_path, name, leaf, key, inter)


def test_inbound_a_leaf_without_its_intermediate_stays_refused_after_a_peer_sent_it(
        pki_env, start_agent, tmp_path):
    app = Recorder()
    port, listeners = inbound(app.port)
    sidecar(start_agent, pki_env, "backend", listeners)
    with_chain, alone, key = issued(pki_env, tmp_path, "fresh", f"spiffe://{TD}/ns/default/frontend")
    assert refused(port, app, alone, key)
    assert echo_ok(port, with_chain, key)
    # The intermediate was sent once; a peer without it is still refused.
    assert refused(port, app, alone, key)
    assert echo_ok(port, with_chain, key)


def test_inbound_an_intermediate_that_expires_while_running(pki_env, start_agent, tmp_path):
    app = Recorder()
    port, listeners = inbound(app.port)
    sidecar(start_agent, pki_env, "backend", listeners)
    expires = pki.now() + datetime.timedelta(seconds=4)
    with_chain, alone, key = issued(pki_env, tmp_path, "short", f"spiffe://{TD}/ns/default/frontend",
                                    not_after=expires)
    assert echo_ok(port, with_chain, key)
    # Once the intermediate has expired, neither the full chain nor the leaf alone passes.
    wait_for(lambda: refused(port, app, with_chain, key), 20, what="expired chain refused")
    assert pki.now() > expires - datetime.timedelta(seconds=1)
    assert refused(port, app, alone, key)
    # A peer under a valid intermediate still passes.
    assert echo_ok(port, *pki_env.peer("frontend"))


class ChainServer:
    """A TLS server (Python's ssl, client certificate required) presenting, per connection, the
    chain file in self.certfile; records what each connection received."""

    def __init__(self, certfile, key, ca):
        self.certfile, self.key, self.ca = certfile, key, ca
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.certfile, self.key)
            ctx.load_verify_locations(self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
            raw.settimeout(5)
            try:
                s = ctx.wrap_socket(raw, server_side=True)
                data = s.recv(100)
                self.received.append(data)
                if data:
                    s.sendall(b"echo:" + data)
                s.close()
            except (ssl.SSLError, OSError):
                raw.close()

    def close(self):
        self.sock.close()


def outbound_ok(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        c.sendall(b"ping")
        return c.recv(100) == b"echo:ping"
    except OSError:
        return False
    finally:
        c.close()


def outbound_refused(port, server):
    """The local connection is closed without an answer and the server got no byte."""
    before = [d for d in server.received if d]
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        c.sendall(b"ping")
        got = c.recv(100)
    except OSError:
        got = b""
    finally:
        c.close()
    return got == b"" and [d for d in server.received if d] == before


def outbound_sidecar(start_agent, env, server):
    port = free_port()
    sidecar(start_agent, env, "frontend",
            {"outbound backend": {"listen": f"127.0.0.1:{port}",
                                  "target": f"127.0.0.1:{server.port}",
                                  "expect_app_id": "backend"}})
    return port


def test_outbound_a_server_without_its_intermediate_stays_refused_after_one_sent_it(
        pki_env, start_agent, tmp_path):
    with_chain, alone, key = issued(pki_env, tmp_path, "srv", f"spiffe://{TD}/ns/default/backend")
    server = ChainServer(alone, key, pki_env.ca)
    port = outbound_sidecar(start_agent, pki_env, server)
    assert outbound_refused(port, server)
    server.certfile = with_chain
    assert outbound_ok(port)
    server.certfile = alone
    assert outbound_refused(port, server)
    server.close()


def test_outbound_an_intermediate_that_expires_while_running(pki_env, start_agent, tmp_path):
    expires = pki.now() + datetime.timedelta(seconds=4)
    with_chain, alone, key = issued(pki_env, tmp_path, "srv", f"spiffe://{TD}/ns/default/backend",
                                    not_after=expires)
    server = ChainServer(with_chain, key, pki_env.ca)
    port = outbound_sidecar(start_agent, pki_env, server)
    assert outbound_ok(port)
    wait_for(lambda: outbound_refused(port, server), 20, what="expired server chain refused")
    server.certfile = alone
    assert outbound_refused(port, server)
    server.close()
