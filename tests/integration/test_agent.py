# SPDX-License-Identifier: Apache-2.0
"""`picket run` (the agent) against real Sentries: picket's own and an independent grpcio one.

Certificates live a few seconds so rotation, back-off and expiry happen within a test."""
import json
import os
import re
import shutil
import signal
import stat
import time

import pytest
from cryptography.hazmat.primitives import serialization

import pki
from conftest import INSTALLED, http_get
from harness import Proc, free_port, picket_bin, run, sanitized, wait_for



def sentry_config(tmp_path, ttl, skew="0s"):
    cfg = tmp_path / "sentry-config.yaml"
    cfg.write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n"
                   "  name: daprsystem\nspec:\n  mtls:\n    enabled: true\n"
                   f"    workloadCertTTL: \"{ttl}\"\n    allowedClockSkew: \"{skew}\"\n")
    return f"--config={cfg}"


def sentry_sections(sentry, **agent):
    return {"agent": {"app_id": "myapp", **agent},
            "sentry": {"address": f"127.0.0.1:{sentry.port}",
                       "trust_anchors_file": sentry.ca_file}}


def test_renews_at_least_five_times_with_new_serial_and_key(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "3s"))
    export = tmp_path / "export"
    history = tmp_path / "history.pem"
    agent = start_agent(sentry_sections(
        sentry, export_dir=export,
        export_command=f"cat {export}/cert.pem >> {history}"))
    installed = agent.wait_installed(6, timeout=40)
    serials = [s for _, _, s in installed]
    assert len(set(serials)) == len(serials)
    assert all(sid == "spiffe://public/ns/default/myapp" for _, sid, _ in installed)
    assert [r for r, _, _ in installed][:2] == ["initial", "renewal"]
    # Each renewal carries a fresh key: the exported leaves have distinct public keys.
    wait_for(lambda: history.exists() and
             len(pki.certs_from_pem(history.read_bytes())) >= 10, 10, what="exports")
    leaves = [c for c in pki.certs_from_pem(history.read_bytes()) if pki.uri_sans(c)]
    keys = {c.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
            for c in leaves}
    assert len(keys) == len(leaves) >= 5
    st = agent.status()
    assert st["rotation"]["ok"] >= 5 and st["rotation"]["failed"] == 0
    # Never a key or token in the agent's log (the autouse fixture checks the markers too).
    assert "PRIVATE KEY" not in agent.proc.output()


def test_renewal_time_is_spread_by_jitter(start_sentry, start_agent, tmp_path):
    """Renewal happens within fraction ± jitter of the lifetime, not at exactly half-life."""
    sentry = start_sentry(sentry_config(tmp_path, "20s"))
    agent = start_agent(sentry_sections(sentry, renew_at="0.5", renew_jitter="0.2"))
    st = agent.status()
    ident = st["identity"]
    life = ident["not_after"] - ident["not_before"]
    offset = (ident["renew_at"] - ident["not_before"]) / life
    assert 0.3 <= offset <= 0.7
    assert "renewal" in re.search(r"next_renewal=(\d+)", agent.proc.output()).group(0)


def test_sentry_outage_backoff_expiry_and_recovery(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "6s"))
    agent = start_agent(sentry_sections(sentry, renew_jitter="0", retry_initial="200ms",
                                        retry_max="1600ms"))
    first = agent.installed()[0][2]
    sentry.proc.stop()
    # While Sentry is away the agent keeps its identity and backs off: waits grow to the cap.
    mark = len(agent.proc.output())
    agent.proc.wait_log(r"identity fetch failed\" attempt=5 ", timeout=20, start=mark)
    assert agent.ready(), "not ready before the identity expired"
    waits = [float(w) for w in re.findall(r"identity fetch failed\" attempt=\d+ .*?retry_in=([\d.]+)s",
                                          agent.proc.output()[mark:])]
    assert waits[0] <= 0.2 and max(waits) <= 1.6
    assert any(w > 0.8 for w in waits[3:]), waits
    # Not ready only once the certificate has expired.
    st = agent.status()
    wait_for(lambda: not agent.ready(), 10, what="not ready after expiry")
    assert time.time() >= st["identity"]["not_after"] - 1
    assert agent.status()["state"] == "expired"
    code, body = http_get(agent.admin_port, "/readyz")
    assert code == 503 and "expired" in body
    # Sentry comes back on the same port with the same credentials: recovery within one cap.
    sentry.proc = Proc(sentry.proc.args, tmp_path / "sentry-again.log")
    sentry.wait_healthy()
    t0 = time.monotonic()
    wait_for(agent.ready, 10, what="ready again")
    assert time.monotonic() - t0 < 1.6 + 1.0
    assert agent.installed()[-1][2] != first


def test_first_fetch_gives_up_after_n_attempts(tmp_path, start_sentry):
    sentry = start_sentry()
    port = free_port()  # nothing listens here
    ini = tmp_path / "a.ini"
    ini.write_text(f"[agent]\napp_id = x\ninitial_attempts = 3\nretry_initial = 100ms\n"
                   f"retry_max = 200ms\n[sentry]\naddress = 127.0.0.1:{port}\n"
                   f"trust_anchors_file = {sentry.ca_file}\n[admin]\nlisten = off\n")
    res = run([picket_bin(), "run", "-c", ini], timeout=20)
    assert res.returncode == 1
    assert "no identity after 3 attempts" in res.stderr


def test_not_ready_until_first_identity(start_agent, tmp_path, start_sentry):
    sentry = start_sentry()
    port = free_port()
    agent = start_agent({"agent": {"app_id": "x", "retry_initial": "100ms", "retry_max": "300ms"},
                         "sentry": {"address": f"127.0.0.1:{port}",
                                    "trust_anchors_file": sentry.ca_file}}, wait_ready=False)
    wait_for(lambda: http_get(agent.admin_port, "/readyz")[0] == 503, 10, what="readyz 503")
    code, body = http_get(agent.admin_port, "/readyz")
    assert "no identity yet" in body
    assert agent.proc.alive()
    metrics = http_get(agent.admin_port, "/metrics")[1]
    assert "picket_ready 0" in metrics
    assert re.search(r"picket_initial_fetch_failures_total [1-9]", metrics)


def test_trust_domain_trap_names_both_ids_and_the_flag(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(trust_domain="cluster.local")
    agent = start_agent(sentry_sections(sentry, retry_initial="5s", retry_max="5s"),
                        wait_ready=False)
    line = agent.proc.wait_log(r"identity fetch failed.*", timeout=20).group(0)
    assert "spiffe://cluster.local/ns/default/dapr-sentry" in line
    assert "spiffe://localhost/ns/default/dapr-sentry" in line
    assert "--control-plane-trust-domain" in line
    agent.proc.stop()
    ok = start_agent(sentry_sections(sentry), args=["--control-plane-trust-domain",
                                                    "cluster.local"])
    assert ok.status()["identity"]["spiffe_id"] == "spiffe://public/ns/default/myapp"


def test_env_and_flags_override_the_file(start_sentry, start_agent, tmp_path):
    sentry = start_sentry()
    with open(sentry.ca_file) as f:
        anchors = f.read()
    sections = {"agent": {"app_id": "fromfile", "namespace": "filens"},
                "sentry": {"address": "127.0.0.1:1"}}
    agent = start_agent(sections, args=["--sentry-address", f"127.0.0.1:{sentry.port}",
                                        "--app-id", "fromflag"],
                        env={"DAPR_TRUST_ANCHORS": anchors, "NAMESPACE": "envns"})
    assert agent.status()["identity"]["spiffe_id"] == "spiffe://public/ns/envns/fromflag"


def test_sentry_local_identity_sets_the_request_id(start_sentry, start_agent):
    sentry = start_sentry()
    agent = start_agent(sentry_sections(sentry), env={"SENTRY_LOCAL_IDENTITY": "other-id"})
    assert agent.status()["identity"]["spiffe_id"] == "spiffe://public/ns/default/other-id"


def test_anchor_file_change_applies_without_restart(start_sentry, start_agent, tmp_path):
    sentry = start_sentry()
    anchors = tmp_path / "anchors.pem"
    shutil.copy(sentry.ca_file, anchors)
    sections = sentry_sections(sentry)
    sections["sentry"]["trust_anchors_file"] = anchors
    agent = start_agent(sections)
    assert len(agent.status()["trust_anchors"]) == 1
    # Garbage: refused, the old set stays.
    mark = len(agent.proc.output())
    anchors.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    agent.proc.wait_log(r"trust anchors refused, keeping the current set", timeout=10,
                        start=mark)
    assert len(agent.status()["trust_anchors"]) == 1 and agent.ready()
    # A new root plus the old one: applied, and the identity is rebuilt with both.
    new_root, _ = pki.make_root(name="new.test")
    with open(sentry.ca_file, "rb") as f:
        old = f.read()
    mark = len(agent.proc.output())
    tmp = tmp_path / "anchors.tmp"
    tmp.write_bytes(old + pki.cert_pem(new_root))
    os.rename(tmp, anchors)
    agent.proc.wait_log(r"identity installed\" reason=trust-anchors", timeout=10, start=mark)
    st = agent.status()
    assert len(st["trust_anchors"]) == 2
    metrics = http_get(agent.admin_port, "/metrics")[1]
    assert 'picket_trust_anchor_updates_total{result="applied"} 1' in metrics
    assert 'picket_trust_anchor_updates_total{result="refused"} 1' in metrics
    # Only the new root (ours is gone): would not verify our own chain -> refused, since Sentry
    # still issues under the old root.
    mark = len(agent.proc.output())
    anchors.write_bytes(pki.cert_pem(new_root))
    agent.proc.wait_log(r"trust anchors refused", timeout=15, start=mark)
    assert len(agent.status()["trust_anchors"]) == 2 and agent.ready()


def make_static(tmp_path, root, rkey, app="static-app", key=None, **kw):
    issuer, ikey = pki.make_issuer(root, rkey)
    key = key or pki.new_key()
    leaf = pki.make_leaf(issuer, ikey, f"spiffe://example.test/ns/default/{app}", key=key, **kw)
    return pki.cert_pem(leaf) + pki.cert_pem(issuer), pki.key_pem(key)


def test_static_identity_from_files_swapped_underneath(start_agent, tmp_path):
    root, rkey = pki.make_root()
    (tmp_path / "ca.pem").write_bytes(pki.cert_pem(root))
    chain, key = make_static(tmp_path, root, rkey)
    (tmp_path / "cert.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    os.chmod(tmp_path / "key.pem", 0o600)
    agent = start_agent({"agent": {"app_id": "static-app", "cert_file": tmp_path / "cert.pem",
                                   "key_file": tmp_path / "key.pem"},
                         "sentry": {"trust_anchors_file": tmp_path / "ca.pem"}})
    first = agent.status()["identity"]
    assert first["spiffe_id"] == "spiffe://example.test/ns/default/static-app"
    assert first["source"] == "static"
    # A mismatched pair (new cert, old key): refused, the old identity stays.
    chain2, key2 = make_static(tmp_path, root, rkey)
    mark = len(agent.proc.output())
    (tmp_path / "cert.pem").write_bytes(chain2)
    agent.proc.wait_log(r"static identity update refused", timeout=10, start=mark)
    assert agent.status()["identity"]["serial"] == first["serial"]
    # The matching key arrives: the new identity is installed after its checks.
    mark = len(agent.proc.output())
    (tmp_path / "key.pem").write_bytes(key2)
    agent.proc.wait_log(r"identity installed\" reason=static-files", timeout=10, start=mark)
    assert agent.status()["identity"]["serial"] != first["serial"]


def test_static_identity_from_dapr_env(start_agent, tmp_path):
    root, rkey = pki.make_root()
    chain, key = make_static(tmp_path, root, rkey, app="envapp")
    agent = start_agent({"agent": {"app_id": "envapp"}},
                        env={"DAPR_CERT_CHAIN": chain.decode(), "DAPR_CERT_KEY": key.decode(),
                             "DAPR_TRUST_ANCHORS": pki.cert_pem(root).decode()})
    assert agent.status()["identity"]["spiffe_id"] == "spiffe://example.test/ns/default/envapp"


def test_static_identity_refused_at_start_when_foreign(tmp_path):
    root, rkey = pki.make_root()
    other, okey = pki.make_root(name="other.test")
    chain, key = make_static(tmp_path, other, okey)
    ini = tmp_path / "a.ini"
    (tmp_path / "c.pem").write_bytes(chain)
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "ca.pem").write_bytes(pki.cert_pem(root))
    ini.write_text(f"[agent]\napp_id = static-app\ncert_file = {tmp_path}/c.pem\n"
                   f"key_file = {tmp_path}/k.pem\n[sentry]\ntrust_anchors_file = {tmp_path}/ca.pem\n"
                   "[admin]\nlisten = off\n")
    res = run([picket_bin(), "run", "-c", ini], timeout=10)
    assert res.returncode == 2
    assert "c.pem" in res.stderr


def test_export_directory_atomic_0600_and_command(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "4s"))
    export = tmp_path / "out"
    marker = tmp_path / "ran"
    agent = start_agent(sentry_sections(sentry, export_dir=export,
                                        export_command=f"echo x >> {marker}"))
    wait_for(lambda: marker.exists(), 10, what="export command")
    assert stat.S_IMODE(os.stat(export / "key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(export).st_mode) == 0o700
    leaf = pki.certs_from_pem((export / "cert.pem").read_bytes())[0]
    key = serialization.load_pem_private_key((export / "key.pem").read_bytes(), None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert pki.certs_from_pem((export / "bundle.pem").read_bytes())
    res = pki.openssl_verify(str(export / "bundle.pem"), str(export / "cert.pem"),
                             str(export / "cert.pem"))
    assert res.returncode == 0, res.stdout + res.stderr
    # A rotation later: the command ran again and no temporary files are left behind.
    agent.wait_installed(2, timeout=15)
    wait_for(lambda: len(marker.read_text().split()) >= 2, 10, what="second export command")
    # What readers open is exactly the three names, links into the one version in force.
    entries = sorted(os.listdir(export))
    visible = [e for e in entries if not e.startswith("..")]
    assert visible == ["bundle.pem", "cert.pem", "key.pem"]
    version = os.readlink(export / "..data")
    assert sorted(e for e in entries if e.startswith("..")) == sorted(["..data", version])
    assert sorted(os.listdir(export / version)) == ["bundle.pem", "cert.pem", "key.pem"]


def test_export_signals_the_pid_file(start_sentry, start_agent, tmp_path):
    sentry = start_sentry()
    sleeper = Proc(["/bin/sh", "-c", "trap 'echo got-hup; exit 0' HUP; sleep 30 & wait"],
                   tmp_path / "sleeper.log")
    wait_for(lambda: sleeper.alive(), 5)
    pid_file = tmp_path / "app.pid"
    pid_file.write_text(f"{sleeper.pid}\n")
    time.sleep(0.2)  # let the shell install its trap
    start_agent(sentry_sections(sentry, export_dir=tmp_path / "out", export_pid_file=pid_file,
                                export_signal="HUP"))
    sleeper.wait_exit(10)
    assert "got-hup" in sleeper.output()


def test_help_documents_every_key_flag_and_variable():
    res = run([picket_bin(), "run", "--help"], timeout=10)
    assert res.returncode == 0
    for name in ("--app-id", "--sentry-address", "--control-plane-trust-domain",
                 "--control-plane-namespace", "--trust-domain", "--trust-anchors-file",
                 "--config", "DAPR_TRUST_ANCHORS", "NAMESPACE", "SENTRY_LOCAL_IDENTITY",
                 "DAPR_CONTROLPLANE_TRUST_DOMAIN", "DAPR_CONTROLPLANE_NAMESPACE",
                 "DAPR_SENTRY_TOKEN_FILE", "DAPR_CERT_CHAIN", "DAPR_CERT_KEY", "renew_at",
                 "renew_jitter", "retry_initial", "retry_max", "initial_attempts", "export_dir",
                 "trust_anchors_file", "[agent]", "[sentry]", "[admin]"):
        assert name in res.stdout, name


def test_bad_config_names_file_and_line(tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text("[agent]\napp_id = a\nrenew_at = 2\n")
    res = run([picket_bin(), "run", "-c", ini], timeout=10)
    assert res.returncode == 2
    assert f"{ini}:3" in res.stderr and "renew_at" in res.stderr
    ini.write_text("[agent]\napp_id = " + "a" * 300 + "\n")
    res = run([picket_bin(), "run", "-c", ini], timeout=10)
    assert res.returncode == 2 and f"{ini}:2" in res.stderr


def py_sections(py, **agent):
    return {"agent": {"app_id": "myapp", **agent},
            "sentry": {"address": py.address, "trust_anchors_file": py.ca_file}}


@pytest.mark.parametrize("key_type", ["p256", "ed25519"])
def test_independent_grpcio_sentry_issues_and_renews(py_sentry, start_agent, key_type):
    py = py_sentry(ttl=3, key_type=key_type)
    agent = start_agent(py_sections(py))
    installed = agent.wait_installed(3, timeout=20)
    assert len({s for _, _, s in installed}) == len(installed)
    # daprd's request shape: id, namespace, no trust domain, no token, validator UNKNOWN; a fresh
    # key each time.
    reqs = py.requests
    assert all(r.id == "myapp" and r.namespace == "default" and r.trust_domain == "" and
               r.token == "" and r.token_validator == 0 for r in reqs)
    assert len({r.csr_public_key for r in reqs}) == len(reqs)


@pytest.mark.parametrize("mode,reason", [
    ("wrong_id", "instead of the requested"),
    ("foreign_root", "does not verify against the trust anchors"),
    ("two_sans", "URI SANs"),
    ("expired", "expired"),
    ("garbage", "workload_certificate"),
])
def test_rogue_sentry_answer_is_rejected_and_old_identity_kept(py_sentry, start_agent, mode,
                                                               reason):
    py = py_sentry(ttl=4)
    agent = start_agent(py_sections(py, retry_initial="200ms", retry_max="400ms"))
    serial = agent.status()["identity"]["serial"]
    py.mode = mode
    mark = len(agent.proc.output())
    line = agent.proc.wait_log(r"identity fetch failed.*", timeout=15, start=mark).group(0)
    assert reason in line
    st = agent.status()
    assert st["identity"]["serial"] == serial and st["ready"]
    assert st["rotation"]["responses_rejected"] >= 1
    metrics = http_get(agent.admin_port, "/metrics")[1]
    assert re.search(r"picket_sentry_responses_rejected_total [1-9]", metrics)
    # Sentry behaves again: the next retry installs a good identity.
    py.mode = "normal"
    agent.proc.wait_log(r"identity installed\" reason=renewal", timeout=10, start=mark)
    assert agent.status()["identity"]["serial"] != serial


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.mark.skipif(not os.path.exists(FAKETIME_LIB), reason="libfaketime is not installed")
@pytest.mark.skipif(sanitized(), reason="libfaketime's clock interposition can deadlock with "
                    "ASan's start-up; the gcc and fast variants run this test")
def test_wall_clock_jump_forward_renews_once_without_a_loop(start_sentry, start_agent, tmp_path):
    """The agent's wall clock jumps 40 minutes ahead (libfaketime; monotonic time untouched) with
    a 1-hour certificate: renewal is overdue, so it renews at once — and, its clock now ahead of
    Sentry's, schedules the next renewal from what is left instead of renewing in a loop."""
    sentry = start_sentry(sentry_config(tmp_path, "1h"))
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    agent = start_agent(sentry_sections(sentry),
                        env={"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": offset,
                             "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    assert len(agent.installed()) == 1
    mark = len(agent.proc.output())
    offset.write_text("+40m\n")
    agent.proc.wait_log(r"identity installed\" reason=renewal", timeout=15, start=mark)
    agent.proc.wait_log(r"clock skew", timeout=5, start=mark)
    time.sleep(6)  # more than one wake-up of the agent's clock check
    assert len(agent.installed()) == 2, agent.proc.output()[mark:]
    st = agent.status()
    assert st["ready"] and st["state"] == "fresh"
    assert st["identity"]["renew_at"] > st["now"]


@pytest.mark.parametrize("adopt", [False, True])
def test_adopting_sentrys_trust_chain_is_optional(start_sentry, start_agent, tmp_path, adopt):
    """Sentry's ca.crt holds two roots; the agent's anchors file only the one that issues.
    Sentry's trust_chain_certificates are adopted only with adopt_trust_chain = true."""
    root, rkey = pki.make_root(name="localhost")
    extra, _ = pki.make_root(name="next-root.test")
    issuer, ikey = pki.make_issuer(root, rkey, subject="spiffe://localhost/ns/default/dapr-sentry")
    creds = tmp_path / "creds"
    pki.write_creds(str(creds), root, issuer, ikey, extra_roots=[extra])
    sentry = start_sentry(creds_dir=str(creds))
    (tmp_path / "one-root.pem").write_bytes(pki.cert_pem(root))
    sections = sentry_sections(sentry)
    sections["sentry"]["trust_anchors_file"] = tmp_path / "one-root.pem"
    sections["sentry"]["adopt_trust_chain"] = "true" if adopt else "false"
    agent = start_agent(sections)
    subjects = sorted(a["subject"] for a in agent.status()["trust_anchors"])
    identity_anchors = int(re.search(r"identity installed\" .* anchors=(\d+)",
                                     agent.proc.output()).group(1))
    assert identity_anchors == (2 if adopt else 1)
    assert subjects == (["O=localhost", "O=next-root.test"] if adopt else ["O=localhost"])


def test_root_rotation_new_anchors_adopted_after_renewing_against_them(start_sentry, start_agent,
                                                                        tmp_path):
    """Sentry moves to a new root; the agent's anchor file then holds only the new root. That set
    does not verify the identity in use, so the agent renews against it first and adopts it only
    because the renewal works."""
    sentry = start_sentry()
    anchors = tmp_path / "anchors.pem"
    shutil.copy(sentry.ca_file, anchors)
    sections = sentry_sections(sentry)
    sections["sentry"]["trust_anchors_file"] = anchors
    agent = start_agent(sections)
    old_serial = agent.status()["identity"]["serial"]
    # New root and issuer for Sentry (it reloads its credentials directory by itself).
    root, rkey = pki.make_root(name="localhost-2")
    issuer, ikey = pki.make_issuer(root, rkey, subject="spiffe://localhost/ns/default/dapr-sentry")
    staging = tmp_path / "staging"
    pki.write_creds(str(staging), root, issuer, ikey)
    mark_s = len(sentry.proc.output())
    for name in ("issuer.key", "issuer.crt", "ca.crt"):
        os.replace(staging / name, os.path.join(sentry.creds_dir, name))
    sentry.proc.wait_log(r"credentials reloaded", timeout=15, start=mark_s)
    sentry.proc.wait_log(r"server certificate issued", timeout=15, start=mark_s)
    mark = len(agent.proc.output())
    tmp = tmp_path / "anchors.tmp"
    tmp.write_bytes(pki.cert_pem(root))
    os.rename(tmp, anchors)
    agent.proc.wait_log(r"renewing against them before adopting", timeout=15, start=mark)
    agent.proc.wait_log(r"identity installed\" reason=renewal", timeout=15, start=mark)
    st = agent.status()
    assert st["identity"]["serial"] != old_serial
    assert [a["subject"] for a in st["trust_anchors"]] == ["O=localhost-2"]
