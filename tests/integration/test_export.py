# SPDX-License-Identifier: Apache-2.0
"""export_dir under crashes: `picket run` is killed (strace's syscall injection) in the middle of
an export, at several points; after each kill the directory still pairs each key with its own
certificate, keys are 0600 in 0700 directories, and a restart removes what the crash left.
Also: files written in place by an older release are migrated, and a directory others may write
to is refused."""
import grp
import os
import pathlib
import re
import shutil
import stat
import subprocess
import tempfile

import pytest
from cryptography.hazmat.primitives import serialization

import pki
from harness import free_port, picket_bin, wait_for
from test_agent import sentry_config, sentry_sections

EXPORTED = "identity exported"
NAMES = ("bundle.pem", "cert.pem", "key.pem")

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


def strace_kill(syscalls, n):
    """Run the agent under strace, SIGKILLed when it enters the n-th call of each of syscalls
    (counted per syscall)."""
    return ["strace", "-f", "-qq", "-o", "/dev/null",
            f"-e", f"inject={syscalls}:signal=KILL:when={n}"]


def key_files(export):
    """Every file (not link) under export holding a private key."""
    found = []
    for root, dirs, files in os.walk(export):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                if b"PRIVATE KEY" in f.read():
                    found.append(path)
    return found


def assert_safe(export):
    """The pair readers see matches, and nothing secret is readable by anyone else."""
    cert, key = export / "cert.pem", export / "key.pem"
    if cert.exists() and key.exists():
        leaf = pki.certs_from_pem(cert.read_bytes())[0]
        k = serialization.load_pem_private_key(key.read_bytes(), None)
        assert k.public_key().public_numbers() == leaf.public_key().public_numbers(), \
            f"{key} does not belong to {cert}: {sorted(os.listdir(export))}"
    for root, dirs, files in os.walk(export):
        for d in dirs:
            path = os.path.join(root, d)
            if not os.path.islink(path):
                assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700, path
    for path in key_files(export):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600, path


def assert_clean(export):
    """One version in force, the three names linking into it, and no other key anywhere."""
    entries = sorted(os.listdir(export))
    version = os.readlink(export / "..data")
    assert entries == sorted(["..data", version, *NAMES]), entries
    for name in NAMES:
        assert os.readlink(export / name) == f"..data/{name}"
    assert sorted(os.listdir(export / version)) == sorted(NAMES)
    assert key_files(export) == [str(export / version / "key.pem")]
    assert_safe(export)


def wait_exported(agent, count=1, timeout=20):
    wait_for(lambda: agent.proc.output().count(EXPORTED) >= count, timeout,
             what=f"{count} exports")


# Kill points: each rename (the ..data swap and the top-level links; the 5th and 6th fall in
# the second export, after a renewal), each link creation, each removal, each fsync of the
# first exports (file contents and directories), the version directory's creation.
KILL_POINTS = ([("rename,renameat,renameat2", n) for n in range(1, 7)] +
               [("symlink,symlinkat", n) for n in (1, 2, 4, 5)] +
               [("unlink,unlinkat", n) for n in (1, 2, 3)] +
               [("fsync", n) for n in (1, 3, 4, 5, 7)] +
               [("mkdir,mkdirat", n) for n in (2, 3)])


def test_export_killed_at_every_step_never_pairs_a_key_with_another_certificate(
        start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "4s"))
    export = tmp_path / "out"
    sections = sentry_sections(sentry, export_dir=export)
    for syscalls, n in KILL_POINTS:
        agent = start_agent(sections, wait_ready=False, prefix=strace_kill(syscalls, n))
        try:
            agent.proc.wait_exit(timeout=30)
        except Exception:
            raise AssertionError(f"not killed at {syscalls} #{n}:\n{agent.proc.output()[-3000:]}")
        assert_safe(export)
    # A clean start removes every leftover and exports again; later exports leave nothing.
    agent = start_agent(sections)
    wait_exported(agent, 1)
    assert_clean(export)
    wait_exported(agent, 2)
    assert_clean(export)


def test_export_migrates_files_written_in_place(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "30s"))
    export = tmp_path / "out"
    export.mkdir(mode=0o700)
    old_key = pki.new_key()
    root, root_key = pki.make_root()
    leaf = pki.make_leaf(root, root_key, "spiffe://example.test/ns/default/old", key=old_key)
    (export / "cert.pem").write_bytes(pki.cert_pem(leaf))
    (export / "key.pem").write_bytes(pki.key_pem(old_key))
    os.chmod(export / "key.pem", 0o644)  # an old key left readable is narrowed, not copied
    (export / "bundle.pem").write_bytes(pki.cert_pem(root))
    # A temporary an older release left behind when it crashed mid-write.
    (export / "key.pem.tmp-Ab12Cd").write_bytes(pki.key_pem(pki.new_key()))
    os.chmod(export / "key.pem.tmp-Ab12Cd", 0o600)
    sections = sentry_sections(sentry, export_dir=export)

    # Killed in the middle of the move (after ..data points at the old files, between the
    # links replacing them): readers still see a matching pair, the old one.
    agent = start_agent(sections, wait_ready=False,
                        prefix=strace_kill("rename,renameat,renameat2", 3))
    agent.proc.wait_exit(timeout=30)
    assert_safe(export)
    agent = start_agent(sections)
    wait_exported(agent, 1)
    assert_clean(export)
    cert = pki.certs_from_pem((export / "cert.pem").read_bytes())[0]
    assert cert.serial_number != leaf.serial_number


def test_export_keeps_modes_under_a_permissive_umask(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "30s"))
    export = tmp_path / "out"
    trace = tmp_path / "opens.txt"
    agent = start_agent(sentry_sections(sentry, export_dir=export),
                        prefix=["sh", "-c", 'umask 000 && exec "$@"', "sh", "strace", "-f",
                                "-qq", "-o", trace, "-e", "trace=open,openat,creat"])
    wait_exported(agent, 1)
    agent.proc.stop()
    assert_clean(export)
    # The key file was born 0600 and exclusive: never a moment with a wider mode.
    creations = [line for line in trace.read_text().splitlines()
                 if "key.pem" in line and "O_CREAT" in line]
    assert creations, trace.read_text()[-2000:]
    for line in creations:
        assert "O_EXCL" in line and "O_NOFOLLOW" in line, line
        assert re.search(r", 0600\) = \d+$", line), line
    assert stat.S_IMODE(os.stat(export).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(export / "cert.pem").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(export / "bundle.pem").st_mode) == 0o644


def test_export_refuses_a_directory_others_can_write(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "30s"))
    export = tmp_path / "out"
    export.mkdir()
    os.chmod(export, 0o777)
    agent = start_agent(sentry_sections(sentry, export_dir=export))
    agent.proc.wait_log(r"export failed\" dir=\S+ error=\"[^\"]*writable by group or others")
    assert os.listdir(export) == []


def test_leftovers_removed_at_start_before_any_identity(start_agent, tmp_path):
    # A crash left an unfinished version (with a key) and a temporary link; Sentry is not there,
    # so no export will come to clean up: the start itself must.
    root, _ = pki.make_root()
    ca = tmp_path / "ca.crt"
    ca.write_bytes(pki.cert_pem(root))
    export = tmp_path / "out"
    export.mkdir(mode=0o700)
    orphan = export / "..2026_01_01_00_00_00.AbCdEf"
    orphan.mkdir(mode=0o700)
    (orphan / "key.pem").write_bytes(pki.key_pem(pki.new_key()))
    os.chmod(orphan / "key.pem", 0o600)
    os.symlink(orphan.name, export / "..data_tmp")
    sections = {"agent": {"app_id": "myapp", "export_dir": export},
                "sentry": {"address": f"127.0.0.1:{free_port()}", "trust_anchors_file": ca}}
    agent = start_agent(sections, wait_ready=False)
    wait_for(lambda: os.listdir(export) == [], 10, what="leftovers removed")
    assert agent.proc.alive()
    assert key_files(export) == []


# export_group: the files of each version belong to a group an app's user is a member of.

@pytest.fixture
def export_group():
    """A throwaway group (removed afterwards); needs root, as picket's CI runs the suite."""
    if os.geteuid() != 0 or shutil.which("groupadd") is None:
        pytest.skip("needs root and groupadd")
    name = f"pkexp{os.getpid() % 100000}"
    subprocess.run(["groupadd", name], check=True, capture_output=True)
    try:
        yield name, grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def reachable_dir():
    """A directory every user can enter (pytest's tmp_path is root's alone), so that whether
    another user reads an exported file depends only on the export's own modes."""
    d = tempfile.mkdtemp(prefix="picket-export-")
    os.chmod(d, 0o711)
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def read_as(path, gid):
    """Read path as user nobody with gid as its only group."""
    return subprocess.run(["setpriv", "--reuid=nobody", f"--regid={gid}", "--clear-groups",
                           "cat", str(path)], capture_output=True, timeout=10)


def assert_group_layout(export, gid):
    """The export directory and the version 0750, the key 0640, the certificates 0644, all of
    them the group's; nothing the group or others may write. A renewal may replace the version
    while it is looked at: then the next one is."""
    for attempt in range(5):
        try:
            return check_group_layout(export, gid)
        except FileNotFoundError:
            if attempt == 4:
                raise


def check_group_layout(export, gid):
    version = export / os.readlink(export / "..data")
    expected = {export: 0o750, version: 0o750, version / "key.pem": 0o640,
                version / "cert.pem": 0o644, version / "bundle.pem": 0o644}
    for path, mode in expected.items():
        st = os.lstat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_gid, st.st_uid) == (mode, gid, os.geteuid()), path
    for name in NAMES:
        assert os.readlink(export / name) == f"..data/{name}"


def test_export_group_owns_every_version_and_its_member_reads_the_key(
        start_sentry, start_agent, tmp_path, export_group, reachable_dir):
    name, gid = export_group
    nogroup = grp.getgrnam("nogroup").gr_gid
    sentry = start_sentry(sentry_config(tmp_path, "4s"))
    export = reachable_dir / "out"
    trace = tmp_path / "calls.txt"
    # umask 000: the modes come from picket, not from the umask it was started with.
    agent = start_agent(sentry_sections(sentry, export_dir=export, export_group=name),
                        prefix=["sh", "-c", 'umask 000 && exec "$@"', "sh", "strace", "-f",
                                "-qq", "-o", trace, "-e",
                                "trace=openat,fchown,fchmod,write"])
    for count in (1, 2):  # the first export, then the one after a renewal
        wait_exported(agent, count)
        assert_group_layout(export, gid)
        member = read_as(export / "key.pem", gid)
        assert member.returncode == 0 and b"PRIVATE KEY" in member.stdout, member.stderr
        assert read_as(export / "cert.pem", gid).returncode == 0
        outsider = read_as(export / "key.pem", nogroup)
        assert outsider.returncode != 0 and b"PRIVATE KEY" not in outsider.stdout
        assert b"Permission denied" in outsider.stderr, outsider.stderr
    agent.proc.stop()
    assert_clean_group(export)
    # Each key was born 0600 and given the group, then 0640, before its first byte.
    calls = trace.read_text().splitlines()
    keys = [i for i, line in enumerate(calls) if "key.pem" in line and "O_CREAT" in line]
    assert len(keys) >= 2, calls[-40:]
    for i in keys:
        assert re.search(r", 0600\) = \d+$", calls[i]), calls[i]
        pid, fd = calls[i].split()[0], calls[i].rsplit(" ", 1)[1]
        mine = [line for line in calls[i + 1:] if line.split()[0] == pid and f"({fd}," in line]
        assert re.search(rf"fchown\({fd}, -1, {gid}\)\s+= 0$", mine[0]), mine[:3]
        assert re.search(rf"fchmod\({fd}, 0640\)\s+= 0$", mine[1]), mine[:3]
        assert mine[2].split()[1].startswith(f"write({fd},"), mine[:3]


def assert_clean_group(export):
    entries = sorted(os.listdir(export))
    version = os.readlink(export / "..data")
    assert entries == sorted(["..data", version, *NAMES]), entries
    assert key_files(export) == [str(export / version / "key.pem")]


def test_export_group_picket_is_not_a_member_of_is_named_with_the_fix(
        start_sentry, start_agent, tmp_path, export_group):
    # Root without CAP_CHOWN is, like picket's own user, not a member of the new group.
    name, gid = export_group
    sentry = start_sentry(sentry_config(tmp_path, "30s"))
    export = tmp_path / "out"
    agent = start_agent(sentry_sections(sentry, export_dir=export, export_group=name),
                        prefix=["setpriv", "--bounding-set=-chown", "--inh-caps=-chown", "--"])
    agent.proc.wait_log(rf"export failed\" dir=\S+ error=\"[^\"]*cannot give it to export_group "
                        rf"{name} \(gid {gid}\)[^\"]*SupplementaryGroups={name}")
    assert "export directory unusable" in agent.proc.output()
    assert not export.exists() or key_files(export) == []


def test_export_group_unknown_is_a_configuration_error(tmp_path):
    ini = tmp_path / "picket.ini"
    ini.write_text("[agent]\napp_id = app\nexport_dir = /nonexistent/out\n"
                   "export_group = pk-no-such-group\n"
                   "[sentry]\naddress = 127.0.0.1:1\ntrust_anchors_file = /dev/null\n")
    res = subprocess.run([str(picket_bin()), "run", "-c", str(ini)], capture_output=True,
                         text=True, timeout=20)
    assert res.returncode == 2, res.stderr
    assert f"{ini}:4: [agent] export_group: no group named 'pk-no-such-group'" in res.stderr, \
        res.stderr
