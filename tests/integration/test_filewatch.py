# SPDX-License-Identifier: Apache-2.0
"""Watched files react only to themselves: a log file written beside the credentials or the
trust anchors never reloads anything, a rewrite with the same bytes is no change, a Kubernetes
`..data` swap is; a refused trust anchors file is not re-read, logged and counted in a loop,
and never drives the agent's Sentry requests faster than its ordinary back-off."""
import os
import re
import threading
import time

import pki
from conftest import http_get
from harness import wait_for
from test_agent import sentry_config, sentry_sections

FILE_CHANGE = "trigger=file-change"


class Scribbler:
    """Every `every` seconds in a thread, until stopped: appends a log line to path, or with
    data, rewrites path with those bytes (or data(n) for the n-th write)."""

    def __init__(self, path, every=0.05, data=None):
        self.path, self.every, self.data, self.writes = path, every, data, 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop_event.is_set():
            if self.data is not None:
                # Written beside and renamed over, as careful tools do: an in-place rewrite can
                # be read half-done (empty) by a loaded machine's reader, which is a refusal of
                # its own and not what these tests count.
                tmp = self.path.with_name(f".{self.path.name}.tmp")
                with open(tmp, "wb") as f:
                    f.write(self.data(self.writes) if callable(self.data) else self.data)
                os.replace(tmp, self.path)
            else:
                with open(self.path, "a") as f:
                    f.write(f"ts={time.time()} level=info line={self.writes}\n")
            self.writes += 1
            time.sleep(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(10)


def hold(seconds, check):
    """Poll check() until seconds have passed; fail as soon as it returns false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check()
        time.sleep(0.05)
    assert check()


def sentry_creds(tmp_path):
    root, rkey = pki.make_root(name="localhost")
    issuer, ikey = pki.make_issuer(root, rkey, subject="spiffe://localhost/ns/default/dapr-sentry")
    return root, rkey, issuer, ikey


def publish_version(vol, version, files):
    """Write files into vol/version and swap vol/..data to it, as Kubernetes does."""
    os.makedirs(vol / version, mode=0o700)
    for name, data in files.items():
        (vol / version / name).write_bytes(data)
        os.chmod(vol / version / name, 0o600)
    os.symlink(version, vol / "..data_tmp")
    os.rename(vol / "..data_tmp", vol / "..data")
    for name in files:
        if not os.path.islink(vol / name):
            os.symlink(f"..data/{name}", vol / name)


def test_sentry_ignores_a_log_file_beside_its_credentials(start_sentry, tmp_path):
    root, rkey, issuer, ikey = sentry_creds(tmp_path)
    creds = tmp_path / "creds"
    pki.write_creds(str(creds), root, issuer, ikey)
    sentry = start_sentry("--log-level", "debug", creds_dir=str(creds))
    with Scribbler(creds / "sentry.log") as log:
        # Three seconds of writes beside the credentials: nothing is reloaded or even looked at.
        hold(3, lambda: sentry.proc.output().count(FILE_CHANGE) == 0)
        assert log.writes >= 20
        # A real change still applies while the log keeps growing (it is not starved by the
        # writes resetting the one-second settle delay).
        new_issuer, new_key = pki.make_issuer(root, rkey,
                                              subject="spiffe://localhost/ns/default/dapr-sentry")
        for name, data in (("issuer.key", pki.key_pem(new_key)),
                           ("issuer.crt", pki.cert_pem(new_issuer))):
            (creds / (name + ".new")).write_bytes(data)
            os.chmod(creds / (name + ".new"), 0o600)
            os.rename(creds / (name + ".new"), creds / name)
        sentry.proc.wait_log(r"credentials reloaded\" trigger=file-change", timeout=10)
        hold(2, lambda: sentry.proc.output().count(FILE_CHANGE) == 1)


def test_sentry_kubernetes_swap_reloads_an_identical_one_does_not(start_sentry, tmp_path):
    root, rkey, issuer, ikey = sentry_creds(tmp_path)
    vol = tmp_path / "creds"
    vol.mkdir(mode=0o700)
    files = {"ca.crt": pki.cert_pem(root), "issuer.crt": pki.cert_pem(issuer),
             "issuer.key": pki.key_pem(ikey)}
    publish_version(vol, "..2026_01_01_00_00_00.1", files)
    sentry = start_sentry("--log-level", "debug", creds_dir=str(vol))
    # The same bytes in a new version: no reload, no look.
    publish_version(vol, "..2026_01_01_00_00_00.2", files)
    hold(3, lambda: sentry.proc.output().count(FILE_CHANGE) == 0)
    # A new issuer: reloaded once.
    new_issuer, new_key = pki.make_issuer(root, rkey,
                                          subject="spiffe://localhost/ns/default/dapr-sentry")
    publish_version(vol, "..2026_01_01_00_00_00.3",
                    {**files, "issuer.crt": pki.cert_pem(new_issuer),
                     "issuer.key": pki.key_pem(new_key)})
    sentry.proc.wait_log(r"credentials reloaded\" trigger=file-change", timeout=10)
    hold(2, lambda: sentry.proc.output().count(FILE_CHANGE) == 1)


GARBAGE = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
REFUSED = "trust anchors refused"
FETCHES = "identity fetch started"


def refused_metric(agent):
    m = re.search(r'picket_trust_anchor_updates_total\{result="refused"\} (\d+)',
                  http_get(agent.admin_port, "/metrics")[1])
    return int(m.group(1)) if m else None


def anchors_agent(start_sentry, start_agent, tmp_path, **agent_keys):
    """An agent whose trust anchors file (a copy of Sentry's) sits in a folder of its own."""
    sentry = start_sentry(sentry_config(tmp_path, "60s"))
    folder = tmp_path / "anchors"
    folder.mkdir()
    anchors = folder / "ca.crt"
    anchors.write_bytes(open(sentry.ca_file, "rb").read())
    sections = sentry_sections(sentry, **agent_keys)
    sections["sentry"]["trust_anchors_file"] = anchors
    return sentry, start_agent(sections), anchors


def test_refused_anchors_file_is_logged_and_counted_once(start_sentry, start_agent, tmp_path):
    sentry, agent, anchors = anchors_agent(start_sentry, start_agent, tmp_path,
                                           retry_initial="200ms", retry_max="1s")
    anchors.write_bytes(GARBAGE)
    agent.proc.wait_log(REFUSED, timeout=10)
    wait_for(lambda: refused_metric(agent) == 1, 10, what="one refusal counted")
    # Held for three seconds while a log beside it grows and the same bytes are written again
    # and again (a configuration tool): still one line, one count, and re-reads backing off.
    with Scribbler(anchors.parent / "picket.log", every=0.3), \
            Scribbler(anchors, every=0.3, data=GARBAGE):
        hold(3, lambda: agent.proc.output().count(REFUSED) == 1 and refused_metric(agent) == 1)
    assert agent.ready()
    # Other garbage is another refusal; going back to the set in force ends it, and the first
    # garbage after that counts again.
    anchors.write_bytes(GARBAGE.replace(b"not", b"still not"))
    wait_for(lambda: refused_metric(agent) == 2, 10, what="a second refusal counted")
    anchors.write_bytes(open(sentry.ca_file, "rb").read())
    time.sleep(0.5)  # settle delay (0.2 s) passes; nothing observable to poll for
    anchors.write_bytes(GARBAGE)
    wait_for(lambda: refused_metric(agent) == 3, 10, what="a third refusal counted")
    hold(1, lambda: agent.proc.output().count(REFUSED) == 3)


def test_anchors_sentry_rejects_never_drive_renewals_faster_than_backoff(
        start_sentry, start_agent, tmp_path):
    sentry, agent, anchors = anchors_agent(start_sentry, start_agent, tmp_path,
                                           retry_initial="1s", retry_max="30s")
    # Only a root Sentry does not issue under: every renewal against it fails.
    new_root, _ = pki.make_root(name="new.test")
    mark = agent.proc.output().count(FETCHES)
    anchors.write_bytes(pki.cert_pem(new_root))
    agent.proc.wait_log(REFUSED, timeout=10)
    # Four seconds of log lines beside the file: retries at 0.5-1 s, then 1-2 s, then 2-4 s
    # after each failure -- at most four renewals in all, one refusal line, one count.
    with Scribbler(anchors.parent / "picket.log", every=0.3):
        hold(4, lambda: agent.proc.output().count(FETCHES) - mark <= 4
             and agent.proc.output().count(REFUSED) == 1 and refused_metric(agent) == 1)
    assert agent.ready()
    # The file rewritten every 0.3 s with a new comment each time (a tool stamping the time):
    # each content is news to log and count, but Sentry is not called any faster -- the back-off
    # goes on from where it was (retries 4-8 s apart by now): at most two more in four seconds.
    mark = agent.proc.output().count(FETCHES)
    stamped = lambda n: f"# written {n}\n".encode() + pki.cert_pem(new_root)  # noqa: E731
    with Scribbler(anchors, every=0.3, data=stamped) as tool:
        hold(4, lambda: agent.proc.output().count(FETCHES) - mark <= 2)
    assert tool.writes >= 10
    wait_for(lambda: refused_metric(agent) > 2, 10, what="new contents counted")
    assert agent.ready()


def test_anchors_kubernetes_swap_applies(start_sentry, start_agent, tmp_path):
    sentry = start_sentry(sentry_config(tmp_path, "60s"))
    vol = tmp_path / "anchors"
    vol.mkdir()
    old = open(sentry.ca_file, "rb").read()
    publish_version(vol, "..2026_01_01_00_00_00.1", {"ca.crt": old})
    sections = sentry_sections(sentry)
    sections["sentry"]["trust_anchors_file"] = vol / "ca.crt"
    agent = start_agent(sections)
    new_root, _ = pki.make_root(name="new.test")
    mark = len(agent.proc.output())
    publish_version(vol, "..2026_01_01_00_00_00.2", {"ca.crt": old + pki.cert_pem(new_root)})
    agent.proc.wait_log(r"identity installed\" reason=trust-anchors", timeout=10, start=mark)
    wait_for(lambda: len(agent.status()["trust_anchors"]) == 2, 10, what="two anchors")
