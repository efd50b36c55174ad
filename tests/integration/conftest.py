# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures: a real `picket sentry` on loopback, temporary credential directories, and
the invariants checked after every test (no process left behind, no key material in any log)."""
import json
import os
import re
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc_h2  # noqa: E402
import sentry_pb  # noqa: E402
from harness import Proc, free_port, picket_bin, wait_for  # noqa: E402

INSTALLED = re.compile(r'identity installed" reason=(\S+) spiffe_id=(\S+) serial=(\S+)')

SECRET_MARKERS = (b"PRIVATE KEY", b"BEGIN CERTIFICATE REQUEST")
SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:")


def http_get(port, path, timeout=2.0):
    """GET http://127.0.0.1:port/path; returns (status, body) or (None, error) if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


class Sentry:
    """A running `picket sentry` and helpers to call it."""

    def __init__(self, proc, creds_dir, port, healthz_port, metrics_port, trust_domain):
        self.proc = proc
        self.creds_dir = creds_dir
        self.port = port
        self.healthz_port = healthz_port
        self.metrics_port = metrics_port
        self.trust_domain = trust_domain

    @property
    def ca_file(self):
        return os.path.join(self.creds_dir, "ca.crt")

    def wait_healthy(self, timeout=20.0):
        def healthy():
            if not self.proc.alive():
                raise RuntimeError("picket sentry exited:\n" + self.proc.output())
            return http_get(self.healthz_port, "/healthz")[0] == 200
        wait_for(healthy, timeout, what="picket sentry /healthz")

    def sign(self, app_id="myapp", namespace="default", csr=None, trust_domain="", validator=0,
             token="", key=None, ca_file=None, raw=None, metadata=()):
        pb = sentry_pb.load()
        if csr is None:
            import pki
            csr = pki.csr_pem(key or pki.new_key())
        req = pb.SignCertificateRequest(id=app_id, namespace=namespace,
                                        certificate_signing_request=csr,
                                        trust_domain=trust_domain, token_validator=validator,
                                        token=token)
        body = raw if raw is not None else req.SerializeToString()
        res = grpc_h2.call("127.0.0.1", self.port, sentry_pb.METHOD, body,
                           ca_file=ca_file or self.ca_file, metadata=metadata)
        res.response = None
        if res.status == sentry_pb.OK and res.messages:
            res.response = pb.SignCertificateResponse.FromString(res.messages[0])
        return res

    def metrics(self):
        return http_get(self.metrics_port, "/metrics")


@pytest.fixture
def start_sentry(tmp_path):
    """Start `picket sentry`; returns a factory taking extra flags and options."""
    started = []

    def start(*flags, creds_dir=None, trust_domain=None, env=None, wait=True, name="sentry"):
        creds_dir = creds_dir or str(tmp_path / "creds")
        os.makedirs(creds_dir, exist_ok=True)
        port, hport, mport = free_port(), free_port(), free_port()
        args = [picket_bin(), "sentry", "--issuer-credentials", creds_dir, "--port", port,
                "--listen-address", "127.0.0.1", "--healthz-port", hport,
                "--healthz-listen-address", "127.0.0.1", "--metrics-port", mport,
                "--metrics-listen-address", "127.0.0.1"]
        if trust_domain:
            args += ["--trust-domain", trust_domain]
        args += list(flags)
        proc = Proc(args, tmp_path / f"{name}.log", env=env)
        s = Sentry(proc, creds_dir, port, hport, mport, trust_domain or "localhost")
        started.append(s)
        if wait:
            s.wait_healthy()
        return s

    yield start
    for s in started:
        s.proc.stop()


class Agent:
    def __init__(self, proc, admin_port, ini):
        self.proc = proc
        self.admin_port = admin_port
        self.ini = ini

    def status(self):
        code, body = http_get(self.admin_port, "/status")
        return json.loads(body) if code == 200 else None

    def ready(self):
        return http_get(self.admin_port, "/readyz")[0] == 200

    def installed(self):
        return INSTALLED.findall(self.proc.output())

    def wait_installed(self, n, timeout=30):
        return wait_for(lambda: len(self.installed()) >= n and self.installed(), timeout,
                        what=f"{n} identities installed")


@pytest.fixture
def start_agent(tmp_path):
    """Start `picket run` with an INI built from sections; returns a factory."""
    count = [0]

    def start(sections, args=(), env=None, wait_ready=True, name=None, prefix=()):
        count[0] += 1
        name = name or f"agent{count[0]}"
        admin_port = free_port()
        sections = {k: dict(v) for k, v in sections.items()}
        sections.setdefault("admin", {}).setdefault("listen", f"127.0.0.1:{admin_port}")
        ini = tmp_path / f"{name}.ini"
        with open(ini, "w") as f:
            for sec, kv in sections.items():
                f.write(f"[{sec}]\n")
                for k, v in kv.items():
                    # A list is a repeated key (allow_* rules are OR-ed line by line).
                    for one in v if isinstance(v, list) else [v]:
                        f.write(f"{k} = {one}\n")
        proc = Proc([*prefix, picket_bin(), "run", "-c", ini, *args], tmp_path / f"{name}.log", env=env)
        agent = Agent(proc, admin_port, ini)
        if wait_ready:
            def ready():
                if not proc.alive():
                    raise RuntimeError("picket run exited:\n" + proc.output())
                return agent.ready()
            wait_for(ready, 30, what="picket run /readyz")
        return agent

    return start


@pytest.fixture(autouse=True)
def no_secrets_in_logs(tmp_path):
    """After each test: no child left running, and no key or CSR text in any log."""
    yield
    for p in list(Proc.registry):
        p.stop()
    Proc.registry.clear()
    for name in os.listdir(tmp_path):
        if name.endswith(".log"):
            with open(tmp_path / name, "rb") as f:
                data = f.read()
            for marker in SECRET_MARKERS:
                assert marker not in data, f"{name} contains {marker!r}"
            # Under the sanitizer build a report in any child's log fails the test, even when
            # the behaviour looked right (leaks are reported at exit, after SIGTERM).
            for marker in SANITIZER_MARKERS:
                assert marker not in data, f"{name}: {data[data.find(marker):][:3000]!r}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach every child's log to the report (the logs explain most failures)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for p in Proc.registry:
            try:
                report.sections.append((f"log of {' '.join(p.args[:2])}", p.output()[-6000:]))
            except OSError:
                pass


@pytest.fixture
def py_sentry(tmp_path):
    """An independent Sentry on grpcio (tests/integration/py_sentry.py). A factory:
    py_sentry(ttl=5, key_type="p256", trust_domain="localhost", namespace="default", **kw)
    returns a started PySentry whose trust bundle is already in .ca_file; stopped at teardown."""
    import py_sentry as py_sentry_module
    made = []

    def make(ttl=5, key_type="p256", trust_domain="localhost", namespace="default", **kw):
        s = py_sentry_module.PySentry(ttl=ttl, key_type=key_type, trust_domain=trust_domain,
                                      namespace=namespace, **kw)
        made.append(s)
        s.write_ca(tmp_path / f"py-sentry-{len(made)}-ca.crt")
        return s.start()

    yield make
    for s in made:
        s.stop()
