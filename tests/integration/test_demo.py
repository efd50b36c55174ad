# SPDX-License-Identifier: Apache-2.0
"""`picket demo` end to end in its short mode: Sentry, two sidecars and the app come up,
requests cross mTLS while certificates rotate, none fails, and nothing is left behind — also
when interrupted."""
import os
import re
import signal
import subprocess
import time

from harness import picket_bin, wait_for


def leftovers(workdir):
    """Processes whose command line names the demo's directory."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if workdir.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_demo_short_mode_zero_failures_and_rotations():
    res = subprocess.run([picket_bin(), "demo", "--duration", "14", "--ttl", "6s"],
                         capture_output=True, text=True, timeout=60)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    workdir = re.search(r"Working directory (/tmp/picket-demo-\w+)", out).group(1)
    lines = re.findall(r"^\[\s*\d+s\] requests ok\s+(\d+) failed (\d+) \| frontend (\w+)\.\.(\w+)"
                       r"\s+(\d+)s left \| backend (\w+)\.\.(\w+)\s+(\d+)s left \| rotations "
                       r"(\d+)\+(\d+)$", out, re.M)
    assert len(lines) >= 12, out
    assert all(failed == "0" for _, failed, *_ in lines)
    # Serials change on both sides while it runs.
    assert len({l[2] for l in lines}) >= 2 and len({l[5] for l in lines}) >= 2
    m = re.search(r"Summary: (\d+) requests in \d+s, (\d+) ok, 0 failed; the app answered (\d+)\.",
                  out)
    assert m and int(m.group(1)) == int(m.group(2)) == int(m.group(3)) >= 100, out
    rot = re.search(r"Rotations: frontend (\d+), backend (\d+)", out)
    assert int(rot.group(1)) >= 2 and int(rot.group(2)) >= 2, out
    assert f"Stopped every process and removed {workdir}." in out
    assert not os.path.exists(workdir)
    assert leftovers(workdir) == []


def test_demo_interrupted_cleans_up(tmp_path):
    log = open(tmp_path / "demo.out", "w+")
    proc = subprocess.Popen([picket_bin(), "demo", "--duration", "60", "--ttl", "6s"],
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        def started():
            log.flush()
            text = (tmp_path / "demo.out").read_text()
            return re.search(r"^\[\s*1s\]", text, re.M) and text
        text = wait_for(started, 30, what="the first live line")
        workdir = re.search(r"Working directory (/tmp/picket-demo-\w+)", text).group(1)
        assert leftovers(workdir), "the children should be running"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 10
        text = (tmp_path / "demo.out").read_text()
        assert "Interrupted." in text and ", 0 failed;" in text
        assert not os.path.exists(workdir)
        assert leftovers(workdir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_demo_usage_errors():
    for args, words in ((["--duration", "0"], "--duration"), (["--ttl", "1s"], "--ttl"),
                        (["--rate", "x"], "--rate"), (["stray"], "unexpected argument")):
        res = subprocess.run([picket_bin(), "demo", *args], capture_output=True, text=True,
                             timeout=10)
        assert res.returncode == 2 and words in res.stderr, res.stderr
