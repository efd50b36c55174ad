# SPDX-License-Identifier: Apache-2.0
"""`picket run --check` and `picket sentry --check`: validate the configuration and every file
it names, bind, write and connect nothing, print what is wrong or that the configuration is
ok, and exit 0 or 2, as `nginx -t` does. Each run is traced (strace) to show that no socket was
bound or connected and nothing was written."""
import os
import shutil
import subprocess

import pytest

import pki
from harness import free_port, picket_bin, sanitized

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


def traced(tmp_path, *args, env=None):
    """Run picket with args under strace; return the result and the bind/connect/write-open
    calls it made (connect() to the unix socket of nscd or syslog would show too: none is
    expected)."""
    trace = tmp_path / "strace.txt"
    env = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}}
    if sanitized():
        # LeakSanitizer cannot run under ptrace: look for leaks in a run of its own, then trace
        # with leak detection off.
        plain = subprocess.run([str(picket_bin()), *map(str, args)], capture_output=True,
                               text=True, timeout=60, env=env)
        assert "Sanitizer" not in plain.stderr, plain.stderr
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    res = subprocess.run(["strace", "-f", "-qq", "-e", "trace=bind,connect,listen,openat",
                          "-o", str(trace), str(picket_bin()), *map(str, args)],
                         capture_output=True, text=True, timeout=60, env=env)
    calls = [line for line in trace.read_text().splitlines()
             if "bind(" in line or "connect(" in line or "listen(" in line
             or ("openat(" in line and ("O_WRONLY" in line or "O_RDWR" in line)
                 and "/dev/" not in line)]
    return res, calls


def static_setup(tmp_path, app="web", key_mode=0o600):
    root, rkey = pki.make_root()
    issuer, ikey = pki.make_issuer(root, rkey)
    key = pki.new_key()
    leaf = pki.make_leaf(issuer, ikey, f"spiffe://example.test/ns/default/{app}", key=key)
    (tmp_path / "ca.pem").write_bytes(pki.cert_pem(root))
    (tmp_path / "c.pem").write_bytes(pki.cert_pem(leaf) + pki.cert_pem(issuer))
    (tmp_path / "k.pem").write_bytes(pki.key_pem(key))
    os.chmod(tmp_path / "k.pem", key_mode)
    ini = tmp_path / "picket.ini"
    ini.write_text(f"[agent]\napp_id = web\ncert_file = {tmp_path}/c.pem\n"
                   f"key_file = {tmp_path}/k.pem\n[sentry]\ntrust_anchors_file = {tmp_path}/ca.pem\n"
                   f"[admin]\nlisten = 127.0.0.1:{free_port()}\n"
                   f"[inbound web]\nlisten = 127.0.0.1:{free_port()}\ntarget = 127.0.0.1:9\n")
    return ini


def test_run_check_ok_binds_nothing(tmp_path):
    ini = static_setup(tmp_path)
    res, calls = traced(tmp_path, "run", "--check", "-c", ini)
    assert res.returncode == 0, res.stderr
    assert f"picket run: configuration ok: {ini} (app_id=web namespace=default mode=static " \
        "listeners=1" in res.stdout, res.stdout
    assert calls == [], calls


@pytest.mark.parametrize("breakage,words", [
    ("key_mode", ["key file", "is mode 0644 (readable by others): chmod 600"]),
    ("foreign_cert", ["is for spiffe://example.test/ns/default/billing", "app_id=web"]),
    ("anchors_missing", ["trust anchors", "ca.pem"]),
    ("bad_key", ["picket.ini:", "allow_tls12"]),
])
def test_run_check_reports_what_is_wrong_and_exits_2(tmp_path, breakage, words):
    ini = static_setup(tmp_path, app="billing" if breakage == "foreign_cert" else "web",
                       key_mode=0o644 if breakage == "key_mode" else 0o600)
    if breakage == "anchors_missing":
        os.unlink(tmp_path / "ca.pem")
    if breakage == "bad_key":
        ini.write_text(ini.read_text().replace("[agent]\n", "[agent]\nallow_tls12 = maybe\n"))
    res, calls = traced(tmp_path, "run", "--check", "-c", ini)
    assert res.returncode == 2, (res.stdout, res.stderr)
    for w in words:
        assert w in res.stderr, (w, res.stderr)
    assert "configuration ok" not in res.stdout
    assert calls == [], calls


def test_run_check_reads_the_sentry_token_file(tmp_path):
    root, _ = pki.make_root()
    (tmp_path / "ca.pem").write_bytes(pki.cert_pem(root))
    ini = tmp_path / "picket.ini"
    ini.write_text(f"[agent]\napp_id = web\n[sentry]\naddress = 127.0.0.1:{free_port()}\n"
                   f"trust_anchors_file = {tmp_path}/ca.pem\n[admin]\nlisten = off\n")
    res, calls = traced(tmp_path, "run", "--check", "-c", ini,
                        env={"DAPR_SENTRY_TOKEN_FILE": tmp_path / "token"})
    assert res.returncode == 2
    assert f"Sentry token (DAPR_SENTRY_TOKEN_FILE): {tmp_path / 'token'}" in res.stderr
    (tmp_path / "token").write_text("a.b.c\n")
    res, calls = traced(tmp_path, "run", "--check", "-c", ini,
                        env={"DAPR_SENTRY_TOKEN_FILE": tmp_path / "token"})
    assert res.returncode == 0, res.stderr
    assert "mode=sentry" in res.stdout and calls == [], calls


def test_sentry_check_validates_credentials_and_binds_nothing(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    flags = ["sentry", "--check", "--issuer-credentials", creds, "--port", free_port()]
    # None yet: fine, a start would generate them; nothing is generated by the check.
    res, calls = traced(tmp_path, *flags)
    assert res.returncode == 0, res.stderr
    assert "picket sentry: configuration ok: credentials missing" in res.stdout
    assert calls == [] and os.listdir(creds) == [], calls
    # A valid set.
    root, rkey = pki.make_root(name="example.test")
    issuer, ikey = pki.make_issuer(root, rkey,
                                   subject="spiffe://example.test/ns/default/dapr-sentry")
    pki.write_creds(str(creds), root, issuer, ikey)
    res, calls = traced(tmp_path, *flags, "--trust-domain", "example.test")
    assert res.returncode == 0, res.stderr
    assert "picket sentry: configuration ok: credentials valid" in res.stdout
    assert calls == [], calls
    # An issuer that is not signed by the root: named, exit 2.
    other, okey = pki.make_root(name="other.test")
    (creds / "ca.crt").write_bytes(pki.cert_pem(other))
    res, calls = traced(tmp_path, *flags)
    assert res.returncode == 2 and "configuration ok" not in res.stdout
    assert "picket sentry: " in res.stderr and calls == [], (res.stderr, calls)
    # No credentials directory at all.
    res, calls = traced(tmp_path, "sentry", "--check", "--issuer-credentials", tmp_path / "none")
    assert res.returncode == 2
    assert f"credentials directory {tmp_path / 'none'} does not exist" in res.stderr
    # A bad flag value.
    res, calls = traced(tmp_path, *flags, "--trust-domain", "Not A Domain")
    assert res.returncode == 2 and "--trust-domain" in res.stderr
