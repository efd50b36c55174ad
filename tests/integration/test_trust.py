# SPDX-License-Identifier: Apache-2.0
"""What picket trusts: only CA certificates are trust anchors (wherever the anchors come from),
and each handshake is decided on the chain that peer sent plus the configured anchors, at that
moment, with nothing remembered from earlier peers."""
import datetime
import os
import signal
import ssl
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
