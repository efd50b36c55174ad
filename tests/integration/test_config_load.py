# SPDX-License-Identifier: Apache-2.0
"""Configuration mistakes that `picket run` reports while reading its file, before it binds any
socket: a bad allow_spiffe_id pattern, two listeners that would take the same connections, a
listener on the admin endpoint's address. Each run is traced (strace) to show that no bind()
happened; the exit code is the configuration error's, 2, and the message names file:line."""
import os
import shutil
import subprocess

import pytest

import pki
from harness import free_port, picket_bin

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


def head(tmp_path, admin="off"):
    root, _ = pki.make_root()
    anchors = tmp_path / "ca.pem"
    anchors.write_bytes(pki.cert_pem(root))
    # A Sentry nobody listens on: the agent would keep retrying, the proxy would serve.
    return (f"[agent]\napp_id = app\n[sentry]\naddress = 127.0.0.1:1\n"
            f"trust_anchors_file = {anchors}\n[admin]\nlisten = {admin}\n")  # lines 1-7


def inbound(name, listen, extra=""):
    return f"[inbound {name}]\nlisten = {listen}\ntarget = 127.0.0.1:9\n{extra}"


def run_traced(tmp_path, text):
    ini = tmp_path / "picket.ini"
    ini.write_text(text)
    trace = tmp_path / "strace.txt"
    # LeakSanitizer cannot run under ptrace; the sanitizers' other checks still do.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    try:
        res = subprocess.run(["strace", "-f", "-qq", "-e", "trace=bind", "-o", str(trace),
                              str(picket_bin()), "run", "-c", str(ini)],
                             capture_output=True, text=True, timeout=20, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("picket run kept running: the configuration was accepted")
    binds = [line for line in trace.read_text().splitlines() if "bind(" in line]
    return ini, res, binds


def assert_refused(res, binds, *words):
    assert res.returncode == 2, res.stderr
    for w in words:
        assert w in res.stderr, (w, res.stderr)
    assert binds == [], binds


def test_bad_spiffe_pattern_is_refused_before_binding(tmp_path):
    port = free_port()
    ini, res, binds = run_traced(
        tmp_path, head(tmp_path) + inbound("web", f"127.0.0.1:{port}",
                                           "allow_spiffe_id = spiffe://x/**\n"))
    assert_refused(res, binds, f"{ini}:11: [inbound web] allow_spiffe_id:",
                   "'*' must stand for a whole path segment")


@pytest.mark.parametrize("first,second", [
    ("127.0.0.1:{p}", "127.0.0.1:{p}"),
    ("localhost:{p}", "127.0.0.1:{p}"),
    ("0.0.0.0:{p}", "127.0.0.1:{p}"),
    ("unix:{d}/app.sock", "unix:{d}/app.sock"),
])
def test_two_listeners_on_one_address_are_refused_before_binding(tmp_path, first, second):
    port = free_port()
    a = first.format(p=port, d=tmp_path)
    b = second.format(p=port, d=tmp_path)
    ini, res, binds = run_traced(tmp_path, head(tmp_path) + inbound("a", a) + inbound("b", b))
    assert_refused(res, binds, f"{ini}:12: [inbound b] listen: '{b}' takes the connections of "
                   f"[inbound a] listen '{a}' (line 9)")


def test_listener_on_the_admin_address_is_refused_before_binding(tmp_path):
    port = free_port()
    ini, res, binds = run_traced(
        tmp_path, head(tmp_path, admin=f"127.0.0.1:{port}") + inbound("web", f"0.0.0.0:{port}"))
    assert_refused(res, binds, f"{ini}:9: [inbound web] listen: '0.0.0.0:{port}' is the admin "
                   f"endpoint's address ([admin] listen '127.0.0.1:{port}', line 7)")
    assert "Address already in use" not in res.stderr
