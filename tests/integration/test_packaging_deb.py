# SPDX-License-Identifier: Apache-2.0
"""packaging/deb/build: the Debian package is built from the binary under test, unpacked into a
throwaway root with `dpkg -x` (nothing is installed on this machine), and checked: control
fields, files, owners and modes, conffiles, that the packaged picket runs, that the man pages
render cleanly and name every flag and key the binary knows, and that the packaged
/etc/picket/picket.ini is a configuration `picket run` starts with. lintian runs when present."""
import gzip
import os
import re
import shutil
import stat
import subprocess

import pytest

from harness import REPO, free_port, picket_bin, port_open, run, wait_for
from packaging_util import localize_ini, run_until_ready

BUILD = os.path.join(REPO, "packaging", "deb", "build")

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("dpkg-shlibdeps") is None,
    reason="dpkg-deb and dpkg-shlibdeps (dpkg-dev) are needed to build the package")

FILES = {
    "usr/bin/picket": 0o755,
    "lib/systemd/system/picket.service": 0o644,
    "lib/systemd/system/picket-sentry.service": 0o644,
    "etc/picket/picket.ini": 0o644,
    "etc/default/picket-sentry": 0o644,
    "usr/share/man/man1/picket.1.gz": 0o644,
    "usr/share/man/man5/picket.ini.5.gz": 0o644,
    "usr/share/doc/picket/copyright": 0o644,
    "usr/share/doc/picket/changelog.Debian.gz": 0o644,
    "usr/share/doc/picket/examples/transparent.conf": 0o644,
    "usr/share/doc/picket/examples/export-group.conf": 0o644,
    "usr/share/lintian/overrides/picket": 0o644,
}


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    res = run([BUILD, "--binary", os.path.abspath(picket_bin()), "--out", out])
    assert res.returncode == 0, res.stdout + res.stderr
    path = res.stdout.strip().splitlines()[-1]
    assert os.path.isfile(path), res.stdout
    return path


@pytest.fixture(scope="module")
def unpacked(deb, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg", "-x", deb, root], check=True)
    return root


def version_of_binary():
    out = run([picket_bin(), "--version"]).stdout
    m = re.fullmatch(r"picket (\S+)\n", out)
    assert m, out
    return m.group(1)


def test_control_fields(deb):
    fields = {}
    for name in ("Package", "Version", "Architecture", "Depends", "Maintainer", "Description"):
        fields[name] = run(["dpkg-deb", "-f", deb, name]).stdout.strip()
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    assert fields["Package"] == "picket"
    assert fields["Version"] == version_of_binary() + "-1"
    assert fields["Architecture"] == arch
    assert os.path.basename(deb) == f"picket_{fields['Version']}_{arch}.deb"
    # Depends lists the package of every shared library the binary links.
    assert re.search(r"\blibc6 \(>= [0-9.]+\)", fields["Depends"]), fields["Depends"]
    for lib, pkg in (("libev.so", "libev4"), ("libnghttp2.so", "libnghttp2-14"),
                     ("libwolfssl.so", "libwolfssl")):
        if lib in run(["ldd", picket_bin()]).stdout:
            assert pkg in fields["Depends"], (lib, fields["Depends"])
    conffiles = subprocess.run(["dpkg-deb", "-I", deb, "conffiles"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert sorted(conffiles) == ["/etc/default/picket-sentry", "/etc/picket/picket.ini"]


def test_contents_owners_and_modes(deb, unpacked):
    listing = run(["dpkg-deb", "--contents", deb]).stdout.splitlines()
    files = {}
    for line in listing:
        perms, owner, _size, _date, _time, name = line.split(None, 5)
        assert owner == "root/root", line
        name = name[2:] if name.startswith("./") else name
        if perms.startswith("-"):
            files[name] = perms
        else:
            assert perms == "drwxr-xr-x", line
    assert sorted(files) == sorted(FILES)
    for name, mode in FILES.items():
        st = os.stat(os.path.join(unpacked, name))
        assert stat.S_IMODE(st.st_mode) == mode, name
    # The binary is stripped and is the one under test, less its symbols.
    res = run(["file", "-b", os.path.join(unpacked, "usr/bin/picket")])
    if res.returncode == 0 and res.stdout:
        assert "not stripped" not in res.stdout, res.stdout


def test_packaged_binary_runs(unpacked):
    packaged = os.path.join(unpacked, "usr/bin/picket")
    res = run([packaged, "--version"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"picket {version_of_binary()}\n"
    res = run([packaged, "cert", "--help"])
    assert res.returncode == 0 and "create-root" in res.stdout


def test_units_are_the_packaging_ones(unpacked):
    for unit in ("picket.service", "picket-sentry.service"):
        with open(os.path.join(REPO, "packaging", "systemd", unit), "rb") as a, \
                open(os.path.join(unpacked, "lib/systemd/system", unit), "rb") as b:
            assert a.read() == b.read(), unit


def man_text(unpacked, path):
    """The page as man shows it, and groff's warnings (there must be none)."""
    with gzip.open(os.path.join(unpacked, path), "rt") as f:
        source = f.read()
    res = subprocess.run(["groff", "-man", "-ww", "-Tutf8", "-z"], input=source,
                         capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert res.returncode == 0 and res.stderr == "", f"{path}: {res.stderr}"
    return source


def flags_of(*args):
    out = run([picket_bin(), *args, "--help"]).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", out))


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
def test_man_pages_render_and_cover_every_flag_and_key(unpacked):
    page1 = man_text(unpacked, "usr/share/man/man1/picket.1.gz")
    page5 = man_text(unpacked, "usr/share/man/man5/picket.ini.5.gz")
    # Roff writes a hyphen in an option as \-.
    text1 = page1.replace("\\-", "-")
    for cmd in (["run"], ["sentry"], ["cert", "fetch"], ["cert", "create-root"],
                ["cert", "create-issuer"], ["cert", "inspect"], ["status"], ["demo"]):
        flags = flags_of(*cmd) - {"--help", "--flag"}
        assert flags, cmd
        missing = sorted(f for f in flags if f not in text1)
        assert not missing, f"picket.1 lacks {missing} of picket {' '.join(cmd)}"
    # Every section and key `picket run --help' lists is in picket.ini(5).
    # Every subcommand has its section.
    for section in ("PICKET RUN", "PICKET SENTRY", "PICKET CERT", "PICKET IPTABLES",
                    "PICKET STATUS", "PICKET DEMO"):
        assert re.search(rf'^\.SH "{section}"', page1, flags=re.M), f"picket.1 lacks {section}"
    help_text = run([picket_bin(), "run", "--help"]).stdout
    keys = set(re.findall(r"^  ([a-z_0-9]+) = ", help_text, flags=re.M))
    sections = set(re.findall(r"^\[([a-z]+)(?: NAME)?\]", help_text, flags=re.M))
    assert len(keys) > 30 and {"agent", "sentry", "admin", "inbound", "outbound"} <= sections
    text5 = page5.replace("\\-", "-")
    missing = sorted(k for k in keys if f'.BI "{k} = "' not in text5)
    assert not missing, f"picket.ini.5 lacks keys {missing}"
    for s in sections:
        assert re.search(rf'^\.SH "\[{s}( NAME)?\]"', text5, flags=re.M), s
    # ... and picket.ini(5) documents no key the parser does not know.
    documented = set(re.findall(r'^\.BI "([a-z_0-9]+) = "', text5, flags=re.M))
    assert documented == keys, sorted(documented ^ keys)


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian not installed")
def test_lintian_is_clean(deb):
    res = run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", deb])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("switch_on", [False, True], ids=["as-shipped", "listeners-on"])
def test_example_config_starts_picket_run(unpacked, tmp_path, start_sentry, switch_on):
    with open(os.path.join(unpacked, "etc/picket/picket.ini")) as f:
        shipped = f.read()
    sentry = start_sentry()
    admin, inbound, outbound = free_port(), free_port(), free_port()
    # Only these lines change: everything else is read exactly as shipped.
    replacements = {
        "address = 127.0.0.1:50001": f"address = 127.0.0.1:{sentry.port}",
        "trust_anchors_file = /etc/picket/ca.crt": f"trust_anchors_file = {sentry.ca_file}",
        "listen = 127.0.0.1:9901": f"listen = 127.0.0.1:{admin}",
    }
    export = tmp_path / "export"
    if switch_on:
        replacements["listen = 0.0.0.0:8443"] = f"listen = 127.0.0.1:{inbound}"
        replacements["listen = 127.0.0.1:9000"] = f"listen = 127.0.0.1:{outbound}"
        # A group this test's user is a member of stands for the app's.
        replacements["export_dir = /run/picket/export"] = f"export_dir = {export}"
        replacements["export_group = myapp"] = f"export_group = {os.getegid()}"
    ini = tmp_path / "picket.ini"
    ini.write_text(localize_ini(shipped, replacements, switch_on=switch_on))
    proc = run_until_ready(os.path.join(unpacked, "usr/bin/picket"), ini, admin,
                           tmp_path / "run.log")
    assert "spiffe_id=spiffe://public/ns/default/myapp" in proc.output()
    if switch_on:
        assert port_open(inbound) and port_open(outbound)
        wait_for(lambda: (export / "key.pem").exists(), 10, what="the export")
        key = os.stat(export / "key.pem")
        assert (stat.S_IMODE(key.st_mode), key.st_gid) == (0o640, os.getegid())
    proc.stop()


def maintainer_env(root, script):
    # What dpkg sets for a maintainer script; DPKG_ROOT makes deb-systemd-helper work on the
    # unpacked tree instead of this machine.
    return {**os.environ, "DPKG_ROOT": str(root), "DPKG_MAINTSCRIPT_PACKAGE": "picket",
            "DPKG_MAINTSCRIPT_NAME": script}


@pytest.mark.skipif(shutil.which("deb-systemd-helper") is None or shutil.which("systemctl") is None,
                    reason="deb-systemd-helper (init-system-helpers) and systemctl are needed")
def test_purge_removes_enablement_links_and_keeps_the_ca(deb, tmp_path):
    """Install (the package's postinst), an administrator's `systemctl enable`, then remove and
    purge with the package's own scripts, all through the real deb-systemd-helper on a throwaway
    root: no enablement link survives the purge, and the CA's directory is left alone."""
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", deb, root], check=True)
    ctl = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", deb, ctl], check=True)
    for script in ("postinst", "prerm", "postrm"):
        assert (ctl / script).exists(), f"the package has no {script}"
    ca_dir = root / "var/lib/picket-sentry"
    ca_dir.mkdir(parents=True)
    (ca_dir / "issuer.key").write_text("kept")

    def script(name, *args):
        res = subprocess.run(["sh", "-e", ctl / name, *args], env=maintainer_env(root, name),
                             capture_output=True, text=True)
        assert res.returncode == 0, f"{name} {args}: {res.stdout}{res.stderr}"

    script("postinst", "configure")
    res = subprocess.run(["systemctl", f"--root={root}", "enable", "picket.service",
                          "picket-sentry.service"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert sorted(os.listdir(wants)) == ["picket-sentry.service", "picket.service"]
    script("prerm", "remove")
    script("postrm", "remove")
    script("postrm", "purge")
    left = [os.path.join(d, f) for d, _, fs in os.walk(root / "etc/systemd") for f in fs]
    assert left == [], left
    assert (ca_dir / "issuer.key").read_text() == "kept"


def test_maintainer_scripts_stop_on_removal_and_restart_on_upgrade(deb, tmp_path):
    """The service is stopped before its binary goes away, and an upgrade restarts what ran, the
    way dh_installsystemd's scripts do it (guarded for systems not booted with systemd)."""
    ctl = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", deb, ctl], check=True)
    prerm = (ctl / "prerm").read_text()
    postinst = (ctl / "postinst").read_text()
    for name in ("prerm", "postinst", "postrm"):
        assert subprocess.run(["sh", "-n", ctl / name]).returncode == 0
    assert re.search(r'"\$1" = "remove".*\n\s*deb-systemd-invoke stop '
                     r"'picket.service' 'picket-sentry.service'", prerm), prerm
    assert "deb-systemd-invoke try-restart 'picket.service' 'picket-sentry.service'" in postinst


def test_open_file_limit_covers_the_shipped_listeners(unpacked):
    """picket.service cannot raise RLIMIT_NOFILE itself (@resources is filtered), so the unit
    must: two descriptors per connection for every listener of the shipped picket.ini switched
    on, at its max_connections (the default picket run --help states), plus room for the rest."""
    with open(os.path.join(unpacked, "lib/systemd/system/picket.service")) as f:
        limits = re.findall(r"^LimitNOFILE=(\d+)$", f.read(), re.M)
    assert limits, "picket.service sets no LimitNOFILE"
    help_text = run([os.path.join(unpacked, "usr/bin/picket"), "run", "--help"]).stdout
    m = re.search(r"max_connections = N.*?\(default (\d+)\)", help_text, re.S)
    assert m, help_text
    with open(os.path.join(unpacked, "etc/picket/picket.ini")) as f:
        listeners = re.findall(r"^#?\[(?:inbound|outbound|transparent) ", f.read(), re.M)
    assert listeners
    assert int(limits[-1]) >= 2 * len(listeners) * int(m.group(1)) + 1024
