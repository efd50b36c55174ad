# SPDX-License-Identifier: Apache-2.0
"""Helpers for the packaging tests: run a shipped picket.ini against this test's Sentry, with
only its addresses and paths moved onto loopback ports and temporary files."""
import os

from conftest import http_get
from harness import Proc, wait_for


def localize_ini(text, replacements, switch_on=False):
    """text with each 'key = value' line whose exact text is a key of replacements replaced by
    its value; with switch_on, lines starting with `#' are switched on first. Every replaced
    line must exist, so a test notices when the shipped file changes under it."""
    out, seen = [], set()
    for line in text.splitlines():
        if switch_on and line.startswith("#"):
            line = line[1:]
        if line in replacements:
            seen.add(line)
            line = replacements[line]
        out.append(line)
    missing = set(replacements) - seen
    assert not missing, f"lines not found in the shipped file: {sorted(missing)}"
    return "\n".join(out) + "\n"


def run_until_ready(binary, ini_path, admin_port, log_path, timeout=30):
    """Start `picket run --config-file ini_path`; wait until /readyz answers 200; return the Proc."""
    proc = Proc([binary, "run", "--config-file", ini_path], log_path)

    def ready():
        if not proc.alive():
            raise RuntimeError(f"picket run exited with {os.path.basename(str(ini_path))}:\n"
                               + proc.output())
        return http_get(admin_port, "/readyz")[0] == 200
    wait_for(ready, timeout, what=f"picket run /readyz with {ini_path}")
    return proc
