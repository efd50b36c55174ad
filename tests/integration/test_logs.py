# SPDX-License-Identifier: Apache-2.0
"""Log lines a log store can index: with JSON ([log] json, --log-as-json) every line of a real run
is one JSON object and each field is its own key, with Dapr's names (time, level, msg, scope,
app_id); the text format is logfmt, every line parsed here by a small logfmt parser."""
import json
import re
import signal
import socket

from harness import free_port, wait_for
from test_lifecycle import loop_listeners, sentry_sections
from test_proxy import Recorder

LOGFMT_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"=]*)(?:\s+|$)')
ESCAPE = re.compile(r'\\(x[0-9a-f]{2}|.)')


def logfmt(line):
    """{key: value} of a logfmt line; raises ValueError when any part of it is not key=value."""
    out, pos = {}, 0
    while pos < len(line):
        m = LOGFMT_PAIR.match(line, pos)
        if not m or m.end() == pos:
            raise ValueError(f"not logfmt at {pos}: {line!r}")
        key, value = m.group(1), m.group(2)
        if value.startswith('"'):
            value = ESCAPE.sub(lambda e: chr(int(e.group(1)[1:], 16)) if e.group(1)[0] == "x"
                               and len(e.group(1)) == 3 else e.group(1), value[1:-1])
        if key in out:
            raise ValueError(f"key {key} twice: {line!r}")
        out[key] = value
        pos = m.end()
    return out


def denied_connection(start_sentry, start_agent, log):
    """A sidecar whose inbound listener refuses its own outbound one (allow_app_id names another
    app), one connection through it; returns the agent once the refusal is logged."""
    sentry = start_sentry()
    app = Recorder()
    in_port, out_port = free_port(), free_port()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, in_port, out_port))
    sections["inbound in"]["allow_app_id"] = "someone-else"
    sections["log"] = log
    agent = start_agent(sections)
    s = socket.create_connection(("127.0.0.1", out_port), timeout=5)
    s.settimeout(5)
    try:
        s.sendall(b"hello")
        s.recv(100)
    except OSError:
        pass
    s.close()
    return agent


def test_json_log_lines_have_every_field_as_a_key(start_sentry, start_agent):
    agent = denied_connection(start_sentry, start_agent, {"json": "true"})

    def denied_line():
        # Every line of the run, read again on each poll, must be a JSON object.
        objs = [json.loads(ln) for ln in agent.proc.output().splitlines() if ln.strip()]
        return next((o for o in objs if o["msg"] == "connection closed"
                     and o.get("listener") == "in" and o.get("reason") == "denied"), None)
    line = wait_for(denied_line, 10, what="the refused connection's JSON line")
    assert line["peer_id"] == "spiffe://public/ns/default/myapp"
    assert line["level"] == "info" and line["scope"] == "picket.proxy"
    assert line["app_id"] == "myapp"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert isinstance(line["bytes_in"], int) and isinstance(line["duration_seconds"], float)
    assert "is not allowed" in line["detail"]
    objs = [json.loads(ln) for ln in agent.proc.output().splitlines() if ln.strip()]
    installed = next(o for o in objs if o["msg"] == "identity installed")
    assert installed["spiffe_id"] == "spiffe://public/ns/default/myapp"
    # A printf-style line is split the same way: its key=value pairs are keys too.
    assert any(o["msg"] == "listener ready" and o.get("name") == "in" and o.get("kind") ==
               "inbound" for o in objs), objs


def test_text_log_lines_are_logfmt(start_sentry, start_agent):
    agent = denied_connection(start_sentry, start_agent, {"level": "info"})

    def denied_line():
        lines = [logfmt(ln) for ln in agent.proc.output().splitlines() if ln.strip()]
        return next((f for f in lines if f["msg"] == "connection closed"
                     and f.get("reason") == "denied"), None)
    line = wait_for(denied_line, 10, what="the refused connection's logfmt line")
    assert line["peer_id"] == "spiffe://public/ns/default/myapp"
    assert line["listener"] == "in" and line["level"] == "info"
    assert "is not allowed" in line["detail"]
    for f in (logfmt(ln) for ln in agent.proc.output().splitlines() if ln.strip()):
        assert {"time", "level", "scope", "msg"} <= set(f), f


def test_sentry_log_as_json(start_sentry):
    sentry = start_sentry("--log-as-json")
    assert sentry.sign().status == 0

    def signed():
        objs = [json.loads(ln) for ln in sentry.proc.output().splitlines() if ln.strip()]
        return next((o for o in objs if o["msg"] == "signed"), None)
    line = wait_for(signed, 10, what="the signed line")
    assert line["spiffe_id"].startswith("spiffe://") and line["scope"] == "picket.sentry"
    assert isinstance(line["not_after"], int)


def test_signals_are_logged_by_name(start_sentry):
    sentry = start_sentry()
    sentry.proc.signal(signal.SIGHUP)
    sentry.proc.wait_log(r'msg="reloading" signal=SIGHUP\b', timeout=10)
    sentry.proc.signal(signal.SIGTERM)
    sentry.proc.wait_log(r'msg="stopping" signal=SIGTERM\b', timeout=10)
