# SPDX-License-Identifier: Apache-2.0
"""README.md cannot drift from the code: its configuration reference is exactly what
`picket run --print-config-reference` prints (made from the parser's tables), and its metrics
section names every metric family `picket run` and `picket sentry` serve."""
import os
import re

from conftest import http_get
from harness import REPO, free_port, picket_bin, run
from test_lifecycle import loop_listeners, sentry_sections
from test_proxy import Recorder

BEGIN = "<!-- BEGIN CONFIG REFERENCE: picket run --print-config-reference -->\n"
END = "<!-- END CONFIG REFERENCE -->"


def readme():
    with open(os.path.join(REPO, "README.md")) as f:
        return f.read()


def test_config_reference_section_is_the_generated_text():
    text = readme()
    section = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    res = run([picket_bin(), "run", "--print-config-reference"], timeout=10)
    assert res.returncode == 0
    assert section == res.stdout, (
        "README.md's configuration reference differs from `picket run "
        "--print-config-reference`: paste the command's output between the markers")
    # And it covers every key the parser knows, each in a table row.
    for key in ("app_id", "renew_jitter", "token_file", "shutdown_timeout", "allow_spiffe_id",
                "expect_namespace", "close_on_own_expiry"):
        assert re.search(rf"^\| `{key}` \|", section, re.M), key


def families(text):
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def test_metrics_section_names_every_family(start_sentry, start_agent):
    sentry = start_sentry()
    sections = sentry_sections(sentry)
    sections.update(loop_listeners(Recorder().port, free_port(), free_port()))
    agent = start_agent(sections)
    served = families(http_get(agent.admin_port, "/metrics")[1]) | families(sentry.metrics()[1])
    text = readme()
    metrics = text[text.index("## Metrics"):text.index("## Rotating a root")]
    documented = set(re.findall(r"`((?:picket|dapr|process)_[a-z_]+)`", metrics))
    missing = served - documented
    assert not missing, f"README's Metrics section lacks {sorted(missing)}"
