# SPDX-License-Identifier: Apache-2.0
"""One exit status for a configuration error in every command: 2, as for bad usage (1 is for
failures at run time)."""
import pytest

from harness import picket_bin, run

BAD_INI = "[agent]\napp_id = myapp\nbogus_key = 1\n"
BAD_YAML = 'spec:\n  mtls:\n    workloadCertTTL: "24x"\n'


@pytest.mark.parametrize("case", ["run", "sentry-config", "sentry-missing-config",
                                  "sentry-trust-domain", "status", "iptables", "cert-fetch",
                                  "demo"])
def test_configuration_errors_exit_2(tmp_path, case):
    ini = tmp_path / "bad.ini"
    ini.write_text(BAD_INI)
    yaml = tmp_path / "bad.yaml"
    yaml.write_text(BAD_YAML)
    creds = tmp_path / "creds"
    args = {
        "run": ["run", "-c", ini],
        "sentry-config": ["sentry", "--config", yaml, "--issuer-credentials", creds],
        "sentry-missing-config": ["sentry", "--config", tmp_path / "none.yaml",
                                  "--issuer-credentials", creds],
        "sentry-trust-domain": ["sentry", "--trust-domain", "not a domain",
                                "--issuer-credentials", creds],
        "status": ["status", "-c", ini],
        "iptables": ["iptables", "install", "-c", ini, "--dry-run"],
        "cert-fetch": ["cert", "fetch", "-c", ini],
        "demo": ["demo", "--ttl", "5x"],
    }[case]
    res = run([picket_bin(), *args], timeout=30)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stderr.strip(), "a configuration error must say what is wrong"
