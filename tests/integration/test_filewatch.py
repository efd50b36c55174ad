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
    """Appends a line to path every `every` seconds in a thread, until stopped."""

    def __init__(self, path, every=0.05):
        self.path, self.every, self.writes = path, every, 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop_event.is_set():
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
        sentry.proc.wait_log(r"credentials reloaded trigger=file-change", timeout=10)
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
    sentry.proc.wait_log(r"credentials reloaded trigger=file-change", timeout=10)
    hold(2, lambda: sentry.proc.output().count(FILE_CHANGE) == 1)
