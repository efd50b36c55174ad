# SPDX-License-Identifier: Apache-2.0
"""packaging/systemd: the units are valid and hardened. `systemd-analyze security --offline=yes`
(systemd 250+) rates each unit file without a running systemd; picket.service,
picket-sentry.service and picket.service with the transparent-mode or the export-group drop-in
must each score an overall exposure of at most 2.0."""
import os
import re
import shutil
import subprocess

import pytest

from harness import REPO

UNITS = os.path.join(REPO, "packaging", "systemd")
MAX_EXPOSURE = 2.0
OVERALL = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+)")


def offline_supported():
    if shutil.which("systemd-analyze") is None:
        return False
    out = subprocess.run(["systemd-analyze", "--help"], capture_output=True, text=True).stdout
    return "--offline" in out


pytestmark = pytest.mark.skipif(not offline_supported(),
                                reason="systemd-analyze with --offline (systemd 250+) not found")


def exposure(root, unit):
    """The overall exposure systemd-analyze gives unit, installed under root/etc/systemd/system."""
    res = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                          "--no-pager", unit], capture_output=True, text=True)
    m = OVERALL.search(res.stdout + res.stderr)
    assert m, f"no exposure level in systemd-analyze output:\n{res.stdout}\n{res.stderr}"
    assert m.group(1) == unit
    return float(m.group(2)), res.stdout


def install(tmp_path, unit, text=None, dropins=()):
    root = tmp_path / "root"
    unit_dir = root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    if text is None:
        with open(os.path.join(UNITS, unit)) as f:
            text = f.read()
    (unit_dir / unit).write_text(text)
    for name, body in dropins:
        d = unit_dir / f"{unit}.d"
        d.mkdir(exist_ok=True)
        (d / name).write_text(body)
    return root


@pytest.mark.parametrize("unit", ["picket.service", "picket-sentry.service"])
def test_unit_exposure_at_most_2(tmp_path, unit):
    level, report = exposure(install(tmp_path, unit), unit)
    print(f"{unit}: exposure {level}")
    assert level <= MAX_EXPOSURE, report


def test_transparent_dropin_exposure_at_most_2(tmp_path):
    with open(os.path.join(UNITS, "picket-transparent.conf")) as f:
        dropin = f.read()
    root = install(tmp_path, "picket.service", dropins=[("transparent.conf", dropin)])
    level, report = exposure(root, "picket.service")
    # The drop-in really applies: the capabilities it grants show up as findings.
    assert re.search(r"✗ CapabilityBoundingSet=~CAP_NET_ADMIN", report), report
    print(f"picket.service + transparent.conf: exposure {level}")
    assert level <= MAX_EXPOSURE, report


def test_export_group_dropin_exposure_at_most_2(tmp_path):
    with open(os.path.join(UNITS, "picket-export-group.conf")) as f:
        dropin = f.read()
    root = install(tmp_path, "picket.service", dropins=[("export-group.conf", dropin)])
    level, report = exposure(root, "picket.service")
    # The drop-in really applies: the chown calls come back and the user namespace goes.
    assert re.search(r"✗ SystemCallFilter=~@privileged", report), report
    assert re.search(r"✗ PrivateUsers=", report), report
    print(f"picket.service + export-group.conf: exposure {level}")
    assert level <= MAX_EXPOSURE, report


def test_export_group_dropin_serves_the_documented_layout():
    """What export_group needs of the unit: picket in the group, fchown allowed after the
    @privileged denial, no user namespace hiding the group, and a runtime directory the app's
    user can enter (the state directory of DynamicUser= is root's alone)."""
    with open(os.path.join(UNITS, "picket-export-group.conf")) as f:
        settings = dict(ln.strip().split("=", 1) for ln in f
                        if "=" in ln and not ln.startswith("#"))
    assert settings == {"SupplementaryGroups": "myapp", "PrivateUsers": "no",
                        "SystemCallFilter": "@chown", "RuntimeDirectoryMode": "0711"}
    with open(os.path.join(UNITS, "picket.service")) as f:
        unit = f.read()
    assert "RuntimeDirectory=picket\n" in unit
    res = subprocess.run(["systemd-analyze", "syscall-filter", "@chown"], capture_output=True,
                         text=True)
    assert re.search(r"^\s+fchown$", res.stdout, re.M), res.stdout
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    assert "export_dir = /run/picket/export" in readme
    assert "export_group = myapp" in readme


def test_unhardened_unit_scores_high(tmp_path):
    """The measurement can fail: the same ExecStart without the hardening scores far above 2."""
    text = "[Service]\nType=notify\nExecStart=/usr/bin/picket run\n"
    level, _ = exposure(install(tmp_path, "bare.service", text=text), "bare.service")
    assert level > 8.0


@pytest.mark.parametrize("unit", ["picket.service", "picket-sentry.service"])
def test_unit_settings(unit):
    """What the units promise beyond the score: how picket starts, reloads and stays confined."""
    with open(os.path.join(UNITS, unit)) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    settings = {}
    for ln in lines:
        if "=" in ln and not ln.startswith("["):
            k, v = ln.split("=", 1)
            settings.setdefault(k, []).append(v)
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["CapabilityBoundingSet"] == [""]
    assert settings["NoNewPrivileges"] == ["yes"]
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["PrivateTmp"] == ["yes"]
    assert settings["DynamicUser"] == ["yes"]
    assert settings["SystemCallFilter"][0] == "@system-service"
    assert settings["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    if unit == "picket.service":
        assert settings["Type"] == ["notify"]
        assert settings["WatchdogSec"] == ["60s"]
        assert settings["ExecStart"] == ["/usr/bin/picket run --config-file /etc/picket/picket.ini"]
    else:
        assert settings["ExecStart"][0].startswith(
            "/usr/bin/picket sentry --issuer-credentials /var/lib/picket-sentry")
        assert settings["StateDirectory"] == ["picket-sentry"]


@pytest.mark.parametrize("unit,dropin", [("picket.service", None),
                                         ("picket-sentry.service", None),
                                         ("picket.service", "picket-export-group.conf")])
def test_unit_verifies(tmp_path, unit, dropin):
    """`systemd-analyze verify` finds no unknown key or bad value, in the unit and with a
    drop-in. The one complaint allowed is that /usr/bin/picket is not installed here."""
    path = os.path.join(UNITS, unit)
    if dropin is not None:
        with open(path) as f:
            (tmp_path / unit).write_text(f.read())
        (tmp_path / f"{unit}.d").mkdir()
        shutil.copy(os.path.join(UNITS, dropin), tmp_path / f"{unit}.d" / dropin)
        path = str(tmp_path / unit)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", path],
                         capture_output=True, text=True)
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    unexpected = [ln for ln in lines if "Command /usr/bin/picket is not executable" not in ln]
    assert not unexpected, "\n".join(unexpected)


# The ports an app (8080), Prometheus (9090) and Istio's sidecar (15000-15090) use on one VM.
TAKEN = {8080, 9090} | set(range(15000, 15091))


def test_packaged_ports_do_not_collide():
    """The packaged units and picket.ini listen on none of the ports the app, Prometheus or
    Istio use; picket-sentry.service moves Sentry's healthz and metrics off Dapr's 8080/9090."""
    with open(os.path.join(UNITS, "picket-sentry.service")) as f:
        [start] = [ln for ln in f if ln.startswith("ExecStart=")]
    flags = dict(re.findall(r"--(healthz-port|metrics-port|port)[= ](\d+)", start))
    assert set(flags) == {"healthz-port", "metrics-port"}, start
    assert not {int(v) for v in flags.values()} & TAKEN, flags
    with open(os.path.join(REPO, "packaging", "picket.ini")) as f:
        listens = re.findall(r"^#?listen = \S+:(\d+)$", f.read(), re.M)
    assert listens and not {int(p) for p in listens} & TAKEN, listens
