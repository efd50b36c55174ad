# SPDX-License-Identifier: Apache-2.0
"""/metrics of `picket run` and `picket sentry` pass `promtool check metrics` (Prometheus's own
linter, Debian package prometheus) and carry the values they claim."""
import datetime
import os
import re
import shutil
import socket
import subprocess

import pki
from conftest import http_get
from harness import free_port, wait_for
from test_agent import sentry_config
from test_lifecycle import connect_echo, loop_listeners, sentry_sections
from test_proxy import Recorder


def promtool(text):
    path = shutil.which("promtool")
    assert path, "promtool is missing: ./scripts/install-deps --test installs Debian's prometheus"
    res = subprocess.run([path, "check", "metrics"], input=text, capture_output=True, text=True,
                         timeout=30)
    return res.returncode, res.stdout + res.stderr


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def families(text):
    return re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)


def test_picket_run_metrics_pass_promtool_and_tell_the_truth(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "3s"))
    app = Recorder()
    in_port, out_port = free_port(), free_port()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, in_port, out_port))
    agent = start_agent(sections)
    # Traffic: a good connection through out -> in, and a plain-text client on the TLS port.
    c = connect_echo(out_port)
    c.close()
    with socket.create_connection(("127.0.0.1", in_port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            raw.recv(100)
        except OSError:
            pass
    agent.wait_installed(2, timeout=15)  # one rotation

    def settled():
        code, text = http_get(agent.admin_port, "/metrics")
        m = samples(text)
        ok = m.get('picket_listener_handshake_failures_total{listener="in",kind="inbound",reason="tls"}', 0) >= 1 \
            and m.get('picket_listener_closed_total{listener="out",kind="outbound",reason="done"}', 0) >= 1
        return ok and text
    text = wait_for(settled, 10, what="counters")
    code, lint = promtool(text)
    assert code == 0 and lint.strip() == "", lint
    m = samples(text)
    st = agent.status()
    ident = st["identity"]
    assert m["picket_ready"] == 1
    assert m['picket_identity_state{state="fresh"}'] + m['picket_identity_state{state="renewing"}'] == 1
    assert m["picket_identity_not_after_timestamp_seconds"] == ident["not_after"]
    assert m["picket_identity_not_before_timestamp_seconds"] == ident["not_before"]
    assert 0 < m["picket_identity_outage_budget_seconds"] <= 3
    assert -1 < m["picket_identity_renewal_seconds"] < 3
    assert m['picket_rotations_total{result="ok"}'] >= 1
    assert m['picket_rotations_total{result="failed"}'] == 0
    assert m['picket_sentry_requests_total{code="OK"}'] >= 2
    assert m["picket_trust_anchors"] == 1
    with open(sentry.ca_file, "rb") as f:
        [root] = pki.certs_from_pem(f.read())
    serial = format(root.serial_number, "x")
    na = root.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert m[f'picket_trust_anchor_not_after_timestamp_seconds{{serial="{serial}"}}'] == na
    for name, kind in (("in", "inbound"), ("out", "outbound")):
        assert m[f'picket_listener_up{{listener="{name}",kind="{kind}"}}'] == 1
        assert m[f'picket_listener_connections_active{{listener="{name}",kind="{kind}"}}'] == 0
    assert m['picket_listener_connections_total{listener="out",kind="outbound"}'] == 1
    assert m['picket_listener_connections_total{listener="in",kind="inbound"}'] == 2
    assert m['picket_listener_bytes_total{listener="out",kind="outbound",direction="in"}'] == len(b"hello")
    assert m['picket_listener_bytes_total{listener="out",kind="outbound",direction="out"}'] == len(b"echo:hello")
    assert m['picket_listener_handshake_failures_total{listener="in",kind="inbound",reason="tls"}'] == 1
    assert m['picket_listener_handshake_failures_total{listener="in",kind="inbound",reason="denied"}'] == 0
    # Every close reason is a sample, so a rate() never starts from nothing.
    assert len([k for k in m if k.startswith('picket_listener_closed_total{listener="in",kind="inbound",')]) == 14
    # Every family has HELP and TYPE, and no name appears twice.
    names = [n for n, _ in families(text)]
    assert len(names) == len(set(names))
    assert all(n.startswith(("picket_", "process_")) for n in names)
    # One mTLS connection went through each listener: one handshake in each histogram, within
    # its +Inf bucket, with cumulative buckets.
    for name, kind in (("in", "inbound"), ("out", "outbound")):
        labels = f'listener="{name}",kind="{kind}"'
        h = "picket_listener_handshake_duration_seconds"
        assert m[f"{h}_count{{{labels}}}"] == 1
        assert m[f'{h}_bucket{{{labels},le="+Inf"}}'] == 1
        assert 0 < m[f"{h}_sum{{{labels}}}"] < 30
        buckets = [v for k, v in m.items() if k.startswith(f"{h}_bucket{{{labels},")]
        assert buckets == sorted(buckets) and len(buckets) == 13
    assert ("picket_listener_handshake_duration_seconds", "histogram") in families(text)
    assert_process_metrics(m, agent.proc.pid)


def assert_process_metrics(m, pid):
    """The process_* families as Prometheus client libraries define them, with true values."""
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    rss_kib = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    assert 0 < m["process_resident_memory_bytes"] <= 4 * rss_kib * 1024
    assert m["process_open_fds"] >= 3
    assert m["process_max_fds"] >= m["process_open_fds"]
    with open(f"/proc/{pid}/limits") as f:
        soft = re.search(r"^Max open files\s+(\d+)", f.read(), re.M).group(1)
    assert m["process_max_fds"] == int(soft)
    assert m["process_cpu_seconds_total"] >= 0
    started = os.stat(f"/proc/{pid}").st_mtime
    assert abs(m["process_start_time_seconds"] - started) < 60


def test_picket_run_metrics_before_any_identity_pass_promtool(start_sentry, start_agent):
    sentry = start_sentry()
    sections = sentry_sections(sentry, retry_initial="100ms", retry_max="200ms")
    sections["sentry"]["address"] = f"127.0.0.1:{free_port()}"
    agent = start_agent(sections, wait_ready=False)
    wait_for(lambda: http_get(agent.admin_port, "/metrics")[0] == 200, 10, what="/metrics")
    text = http_get(agent.admin_port, "/metrics")[1]
    code, lint = promtool(text)
    assert code == 0 and lint.strip() == "", lint
    m = samples(text)
    assert m["picket_ready"] == 0 and m['picket_identity_state{state="starting"}'] == 1
    assert "picket_identity_not_after_timestamp_seconds" not in m


def test_picket_sentry_metrics_pass_promtool(start_sentry):
    sentry = start_sentry()
    assert sentry.sign().status == 0
    code, text = sentry.metrics()
    assert code == 200
    rc, lint = promtool(text)
    assert rc == 0 and lint.strip() == "", lint
    m = samples(text)
    for name in ("dapr_sentry_cert_sign_request_received_total",
                 "dapr_sentry_cert_sign_success_total", "dapr_sentry_issuercert_changed_total",
                 "dapr_sentry_servercert_issue_failed_total",
                 "dapr_sentry_issuercert_expiry_timestamp",
                 "picket_sentry_root_cert_expiry_timestamp_seconds",
                 "picket_sentry_server_cert_expiry_timestamp_seconds"):
        assert name in m, name
    assert m["dapr_sentry_cert_sign_success_total"] == 1
    assert_process_metrics(m, sentry.proc.pid)


def test_byte_counters_move_while_the_connection_is_open(start_sentry, start_agent):
    # A long-lived connection is not invisible until it closes: the bytes it carried show in
    # /metrics and /status while it is still open, and the two agree.
    sentry = start_sentry()
    app = Recorder()
    in_port, out_port = free_port(), free_port()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(app.port, in_port, out_port))
    agent = start_agent(sections)
    conn = connect_echo(out_port)  # sent "hello", got "echo:hello"; still open
    try:
        def counted():
            m = samples(http_get(agent.admin_port, "/metrics")[1])
            out_in = m.get('picket_listener_bytes_total{listener="out",kind="outbound",direction="in"}', 0)
            out_out = m.get('picket_listener_bytes_total{listener="out",kind="outbound",direction="out"}', 0)
            in_in = m.get('picket_listener_bytes_total{listener="in",kind="inbound",direction="in"}', 0)
            return (out_in, out_out, in_in) == (len(b"hello"), len(b"echo:hello"), len(b"hello"))
        wait_for(counted, 10, what="byte counters of an open connection")

        def status_counted():
            by_name = {ls["name"]: ls for ls in agent.status()["listeners"]}
            return (by_name["out"]["bytes_in"], by_name["out"]["bytes_out"],
                    by_name["out"]["active"]) == (len(b"hello"), len(b"echo:hello"), 1)
        wait_for(status_counted, 10, what="/status byte counters of an open connection")
        m = samples(http_get(agent.admin_port, "/metrics")[1])
        assert m['picket_listener_connections_active{listener="out",kind="outbound"}'] == 1
    finally:
        conn.close()
    # Closing adds nothing twice.
    wait_for(lambda: samples(http_get(agent.admin_port, "/metrics")[1]).get(
        'picket_listener_closed_total{listener="out",kind="outbound",reason="done"}', 0) == 1, 10, what="close")
    m = samples(http_get(agent.admin_port, "/metrics")[1])
    assert m['picket_listener_bytes_total{listener="out",kind="outbound",direction="in"}'] == len(b"hello")
    assert m['picket_listener_bytes_total{listener="out",kind="outbound",direction="out"}'] == len(b"echo:hello")
