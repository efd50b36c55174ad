# SPDX-License-Identifier: Apache-2.0
"""`picket status` against a running sidecar (TCP and unix admin socket): what it prints for a
person, --json, the exit codes that make it a probe; and the /status document against its
JSON schema (tests/integration/status.schema.json)."""
import hashlib
import json
import os
import re
import tempfile

import jsonschema
import pytest

import pki
from harness import free_port, picket_bin, run, wait_for
from test_agent import sentry_config
from test_lifecycle import loop_listeners, sentry_sections, write_ini
from test_proxy import Recorder

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "status.schema.json")


def status(*args):
    return run([picket_bin(), "status", *args], timeout=20)


def validate(doc):
    with open(SCHEMA) as f:
        jsonschema.validate(doc, json.load(f))


def test_human_output_json_and_schema_of_a_ready_sidecar(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "1h"))
    app = Recorder()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, free_port(), free_port()))
    agent = start_agent(sections)
    doc = agent.status()
    validate(doc)
    ident = doc["identity"]

    res = status("--admin", f"127.0.0.1:{agent.admin_port}")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert re.search(r"state\s+ready, fresh", out)
    assert f"identity     {ident['spiffe_id']} (from sentry)" in out
    assert f"serial       {ident['serial']}" in out
    # A one-hour certificate: "expires in 59m 5Xs" (or 1h 0m on a slow start).
    assert re.search(r"not after\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                     r"\(expires in (59m \d\ds|1h 0m)\)", out), out
    assert re.search(r"renewal\s+.* UTC \(in \d+m \d\ds\)", out), out
    # The anchor with its SHA-256 fingerprint, the same openssl would show.
    with open(sentry.ca_file, "rb") as f:
        [root] = pki.certs_from_pem(f.read())
    from cryptography.hazmat.primitives import serialization
    fp = hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert f"sha256 {fp}" in out
    assert re.search(r"expires in \d+d \d+h", out)
    assert re.search(r"inbound\s+in\s+127\.0\.0\.1:\d+\s+up\s+0 open, 0 total", out), out
    assert re.search(r"outbound\s+out\s+127\.0\.0\.1:\d+\s+up", out), out

    res = status("--admin", f"127.0.0.1:{agent.admin_port}", "--json")
    assert res.returncode == 0
    passed = json.loads(res.stdout)
    validate(passed)
    assert passed["identity"] == ident


def test_unix_admin_socket_via_config_file(start_sentry, start_agent):
    sentry = start_sentry()
    sock_dir = tempfile.mkdtemp(prefix="pk-admin-", dir="/tmp")
    sock = os.path.join(sock_dir, "admin.sock")
    try:
        sections = sentry_sections(sentry)
        sections["admin"] = {"listen": f"unix:{sock}"}
        agent = start_agent(sections, wait_ready=False)
        wait_for(lambda: status("-c", agent.ini).returncode == 0, 20, what="ready via unix")
        res = status("-c", agent.ini)
        assert "(from sentry)" in res.stdout
        res = status("--admin", f"unix:{sock}", "--json")
        assert res.returncode == 0
        validate(json.loads(res.stdout))
    finally:
        agent.proc.stop()
        os.path.exists(sock) and os.unlink(sock)
        os.rmdir(sock_dir)


def test_not_ready_exits_1_with_the_reason(start_sentry, start_agent):
    sentry = start_sentry()
    sections = sentry_sections(sentry, retry_initial="100ms", retry_max="200ms")
    sections["sentry"]["address"] = f"127.0.0.1:{free_port()}"  # nobody there
    agent = start_agent(sections, wait_ready=False)
    admin = f"127.0.0.1:{agent.admin_port}"
    wait_for(lambda: status("--admin", admin).returncode == 1, 20, what="answer, not ready")
    res = status("--admin", admin)
    assert re.search(r"state\s+NOT READY, starting: no identity yet \(\d+ failed attempts\)",
                     res.stdout), res.stdout
    assert "identity     none yet" in res.stdout
    res = status("--admin", admin, "--json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    validate(doc)
    assert doc["ready"] is False and doc["identity"] is None
    assert doc["not_ready_reason"].startswith("no identity yet")


@pytest.mark.parametrize("args,code,words", [
    (["--admin", "127.0.0.1:PORT"], 3, "Connection refused"),
    (["--admin", "nonsense"], 2, "expected HOST:PORT"),
    (["--admin", "127.0.0.1:1", "-c", "x.ini"], 2, "not both"),
    (["--timeout", "soon"], 2, "--timeout"),
    (["extra"], 2, "unexpected argument 'extra'"),
    (["-c", "/nonexistent/picket.ini"], 2, "/nonexistent/picket.ini"),
])
def test_exit_codes_for_usage_and_unreachable(args, code, words):
    args = [a.replace("PORT", str(free_port())) for a in args]
    res = status(*args)
    assert res.returncode == code, (res.stdout, res.stderr)
    assert words in res.stderr


def test_an_endpoint_that_is_not_picket_is_exit_3(tmp_path):
    """Something else on the port (an HTTP server that answers 404 or garbage)."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res = status("--admin", f"127.0.0.1:{srv.server_address[1]}")
        assert res.returncode == 3
        assert "not a picket status document" in res.stderr
    finally:
        srv.shutdown()


def test_admin_off_in_config_is_a_usage_error(tmp_path):
    ini = tmp_path / "p.ini"
    write_ini(ini, {"admin": {"listen": "off"}})
    res = status("-c", ini)
    assert res.returncode == 2 and "the admin endpoint is off" in res.stderr
