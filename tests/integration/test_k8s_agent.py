# SPDX-License-Identifier: Apache-2.0
"""`picket run` as daprd runs in a pod: --mode kubernetes (or detected), the projected
service-account token re-read for every request, the legacy token as a fallback, and a token that
cannot be read shown in /status; and daprd's own command line with its Configuration YAML.

The projected token lives under /var/run/secrets; PICKET_TEST_SECRETS_DIR moves that root into
the test's temporary directory."""
import os

import pytest

from conftest import http_get
from harness import Proc, free_port, picket_bin, run, wait_for

KUBERNETES = 2
JWKS = 3
UNKNOWN = 0


def py_sections(py, **agent):
    return {"agent": {"app_id": "myapp", **agent},
            "sentry": {"address": py.address, "trust_anchors_file": py.ca_file}}


def write_token(secrets, rel, value):
    path = secrets / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".new")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)
    return path


def clean_env(**extra):
    """The test's environment without a pod's variables, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBERNETES_SERVICE_HOST", "DAPR_SENTRY_TOKEN_FILE", "PICKET_MODE")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.mark.parametrize("how", ["flag", "key", "env", "detected"])
def test_kubernetes_mode_sends_the_projected_token_reread_per_request(py_sentry, start_agent,
                                                                       tmp_path, how):
    secrets = tmp_path / "secrets"
    write_token(secrets, "dapr.io/sentrytoken/token", "projected-token-one")
    py = py_sentry(ttl=3)
    env = clean_env(PICKET_TEST_SECRETS_DIR=secrets)
    args, agent_keys = [], {}
    if how == "flag":
        args = ["--mode", "kubernetes"]
    elif how == "key":
        agent_keys = {"mode": "kubernetes"}
    elif how == "env":
        env["PICKET_MODE"] = "kubernetes"
    else:
        env["KUBERNETES_SERVICE_HOST"] = "10.96.0.1"
    agent = start_agent(py_sections(py, **agent_keys), args=args, env=env)
    agent.wait_installed(1, timeout=20)
    # The projected token rotates; the next request carries the new one.
    write_token(secrets, "dapr.io/sentrytoken/token", "projected-token-two")
    wait_for(lambda: any(r.token == "projected-token-two" for r in py.requests), 20,
             what="a request with the rotated token")
    reqs = py.requests
    assert reqs[0].token == "projected-token-one"
    assert all(r.token_validator == KUBERNETES for r in reqs)
    out = agent.proc.output()
    assert "projected-token-one" not in out and "projected-token-two" not in out


def test_legacy_service_account_token_when_the_projected_one_is_missing(py_sentry, start_agent,
                                                                          tmp_path):
    secrets = tmp_path / "secrets"
    write_token(secrets, "kubernetes.io/serviceaccount/token", "legacy-sa-token")
    py = py_sentry(ttl=30)
    agent = start_agent(py_sections(py), args=["--mode", "kubernetes"],
                        env=clean_env(PICKET_TEST_SECRETS_DIR=secrets))
    agent.wait_installed(1, timeout=20)
    req = py.requests[0]
    assert (req.token, req.token_validator) == ("legacy-sa-token", KUBERNETES)
    out = agent.proc.output()
    assert "legacy" in out and "dapr-identity-token" in out
    assert "legacy-sa-token" not in out


def test_unreadable_token_is_named_counted_and_shown_in_status(py_sentry, start_agent, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    py = py_sentry(ttl=30)
    agent = start_agent(py_sections(py, retry_initial="100ms", retry_max="200ms"),
                        args=["--mode", "kubernetes"],
                        env=clean_env(PICKET_TEST_SECRETS_DIR=secrets), wait_ready=False)

    def counted():
        code, body = http_get(agent.admin_port, "/status")
        if code != 200:
            return None
        import json
        rot = json.loads(body)["rotation"]
        return rot if rot["token_failures"] >= 2 else None
    rot = wait_for(counted, 20, what="token failures in /status")
    assert str(secrets / "kubernetes.io/serviceaccount/token") in rot["last_error"]
    assert "DAPR_SENTRY_TOKEN_FILE" in rot["last_error"]
    assert py.requests == []
    code, body = http_get(agent.admin_port, "/metrics")
    assert code == 200 and "picket_sentry_token_failures_total" in body
    # Once the token is there, the next attempt succeeds.
    write_token(secrets, "dapr.io/sentrytoken/token", "late-token")
    agent.wait_installed(1, timeout=20)
    assert py.requests[-1].token == "late-token"


@pytest.mark.parametrize("mode,validator", [("standalone", JWKS), ("kubernetes", KUBERNETES)])
def test_token_file_variable_validator_follows_the_mode(py_sentry, start_agent, tmp_path, mode,
                                                        validator):
    token = tmp_path / "jwt"
    token.write_text("file-token\n")
    py = py_sentry(ttl=30)
    agent = start_agent(py_sections(py), args=["--mode", mode],
                        env=clean_env(DAPR_SENTRY_TOKEN_FILE=token,
                                      PICKET_TEST_SECRETS_DIR=tmp_path / "none"))
    agent.wait_installed(1, timeout=20)
    req = py.requests[0]
    assert (req.token, req.token_validator) == ("file-token", validator)


def test_standalone_forced_in_a_pod_sends_no_token(py_sentry, start_agent, tmp_path):
    secrets = tmp_path / "secrets"
    write_token(secrets, "dapr.io/sentrytoken/token", "never-sent")
    py = py_sentry(ttl=30)
    agent = start_agent(py_sections(py), args=["--mode", "standalone"],
                        env=clean_env(PICKET_TEST_SECRETS_DIR=secrets,
                                      KUBERNETES_SERVICE_HOST="10.96.0.1"))
    agent.wait_installed(1, timeout=20)
    req = py.requests[0]
    assert (req.token, req.token_validator) == ("", UNKNOWN)


# ---- daprd's command line ----

CONFIG_YAML = """apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: daprsystem
  namespace: default
spec:
  mtls:
    enabled: {enabled}
    workloadCertTTL: "24h"
    allowedClockSkew: "15m"
  tracing:
    samplingRate: "1"
"""


def daprd_line(sentry_port):
    # The docs' line, with the port of the Sentry this test started.
    return ["--app-id", "myapp", "--enable-mtls", "--sentry-address",
            f"localhost:{sentry_port}", "--config=./config.yaml"]


def test_daprd_command_line_runs_as_written(start_sentry, tmp_path):
    sentry = start_sentry()
    (tmp_path / "config.yaml").write_text(CONFIG_YAML.format(enabled="true"))
    admin = free_port()
    # Only the admin address comes from picket.ini, so parallel tests do not share a port.
    (tmp_path / "admin.ini").write_text(f"[admin]\nlisten = 127.0.0.1:{admin}\n")
    env = clean_env(DAPR_TRUST_ANCHORS=open(sentry.ca_file).read())
    proc = Proc([picket_bin(), "run", *daprd_line(sentry.port), "-c", "admin.ini"],
                tmp_path / "daprd-line.log", env=env, cwd=tmp_path)

    def ready():
        if not proc.alive():
            pytest.fail("picket run exited:\n" + proc.output())
        return http_get(admin, "/readyz")[0] == 200
    wait_for(ready, 30, what="picket run /readyz")
    out = proc.output()
    assert "spec.tracing" in out and "spec.mtls.workloadCertTTL" in out


def test_daprd_config_with_mtls_disabled_is_refused(tmp_path, start_sentry):
    sentry = start_sentry()
    (tmp_path / "config.yaml").write_text(CONFIG_YAML.format(enabled="false"))
    env = clean_env(DAPR_TRUST_ANCHORS=open(sentry.ca_file).read())
    res = run([picket_bin(), "run", *daprd_line(sentry.port)], env=env, cwd=tmp_path,
              timeout=10)
    assert res.returncode == 2
    assert "config.yaml:8:14: spec.mtls.enabled is false" in res.stderr
    assert "mTLS" in res.stderr


def test_picket_ini_given_to_config_says_where_it_goes(tmp_path):
    ini = tmp_path / "picket.ini"
    ini.write_text("[agent]\napp_id = myapp\n")
    res = run([picket_bin(), "run", "--config", ini], timeout=10)
    assert res.returncode == 2
    assert str(ini) in res.stderr and "-c or --config-file" in res.stderr


def test_enable_mtls_false_is_refused(tmp_path):
    res = run([picket_bin(), "run", "--app-id", "myapp", "--enable-mtls=false"], timeout=10)
    assert res.returncode == 2 and "--enable-mtls=false" in res.stderr
