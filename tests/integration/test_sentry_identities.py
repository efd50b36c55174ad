# SPDX-License-Identifier: Apache-2.0
"""Which identities `picket sentry` issues, over real gRPC to the real binary: requests encoded by
hand (so strings can hold NUL bytes and broken UTF-8), each answered with a status and either the
SPIFFE ID of the certificate issued or the refusal's message.

The `dapr` column says what Dapr's Sentry (1.14+, SENTRY-PROTOCOL.md §4) answers, INSECURE
validator, so the difference is on record: picket keeps Dapr's codes (validator failures are
PERMISSION_DENIED, a message that does not decode is INVALID_ARGUMENT) and refuses where Dapr
issues what it should not."""
import os
import time

import pytest

import pki
from harness import picket_bin, run
from sentry_pb import INVALID_ARGUMENT, OK, PERMISSION_DENIED
from test_sentry import rs256_token, start_jwks_sentry

TD = "example.test"
NS = "dapr-system"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    """One protobuf field: bytes are length-delimited (wire type 2), ints are varints."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def encode(app_id=b"myapp", namespace=b"default", trust_domain=b"", token=b"", validator=0,
           csr=None):
    """A SignCertificateRequest (sentry.proto) encoded by hand, field by field."""
    out = field(1, app_id) + field(4, namespace) + field(5, csr or pki.csr_pem(pki.new_key()))
    if trust_domain:
        out += field(3, trust_domain)
    if token:
        out += field(2, token)
    if validator:
        out += field(6, validator)
    return out


def answer(sentry, body):
    """(status, SPIFFE ID issued) or (status, message)."""
    res = sentry.sign(raw=body)
    if res.status == OK:
        leaf = pki.certs_from_pem(res.response.workload_certificate)[0]
        return res.status, pki.uri_sans(leaf)[0]
    return res.status, res.message


def check_table(sentry, table):
    wrong = []
    for name, req, status, expect, dapr in table:
        got_status, got = answer(sentry, encode(**req))
        if got_status != status or expect not in got:
            wrong.append(f"{name}: got {got_status} {got!r}, want {status} {expect!r} "
                         f"(Dapr: {dapr})")
    assert not wrong, "\n".join(wrong)


PD, IA = PERMISSION_DENIED, INVALID_ARGUMENT
NOT_SIGNED = "is not one this Sentry signs for (allowed: example.test, public, extra.test; " \
             "add trust domains with --allowed-trust-domains)"
CONTROL_PLANE = "is a control-plane identity, which the INSECURE validator does not " \
                "authenticate; use a JWKS token for it, or start picket sentry with " \
                "--allow-insecure-control-plane-ids"
OWN = "is Sentry's own identity, which is never issued to a request"

# name, request fields, status, SPIFFE ID issued or text of the message, what Dapr answers.
INSECURE_TABLE = [
    ("ordinary app", {}, OK, "spiffe://public/ns/default/myapp", "OK, same ID"),
    ("Sentry's trust domain", dict(trust_domain=TD.encode()), OK,
     "spiffe://example.test/ns/default/myapp", "OK, same ID"),
    ("listed trust domain", dict(trust_domain=b"extra.test"), OK,
     "spiffe://extra.test/ns/default/myapp", "OK, same ID"),
    ("app id of 64", dict(app_id=b"a" * 64), OK, "spiffe://public/ns/default/" + "a" * 64,
     "OK, same ID"),
    ("namespace of 63", dict(namespace=b"n" * 63), OK, "spiffe://public/ns/" + "n" * 63 + "/myapp",
     "OK, same ID"),
    # 2. trust domains
    ("foreign trust domain", dict(trust_domain=b"evil.test"), PD,
     "trust domain 'evil.test' " + NOT_SIGNED, "OK, spiffe://evil.test/..."),
    ("localhost", dict(trust_domain=b"localhost"), PD, "'localhost' " + NOT_SIGNED,
     "OK, spiffe://localhost/..."),
    ("trailing dot", dict(trust_domain=b"example.test."), PD, "'example.test.' " + NOT_SIGNED,
     "OK, spiffe://example.test./..."),
    ("leading dot", dict(trust_domain=b".example.test"), PD, NOT_SIGNED, "OK"),
    ("suffix of ours", dict(trust_domain=b"test"), PD, NOT_SIGNED, "OK"),
    ("upper case", dict(trust_domain=b"Example.test"), PD, "must be lower case",
     "PERMISSION_DENIED (go-spiffe)"),
    ("NUL in trust domain", dict(trust_domain=b"public\0evil.test"), PD,
     "trust domain 'public\\x00evil.test': a NUL byte is not allowed",
     "PERMISSION_DENIED (go-spiffe)"),
    ("port in trust domain", dict(trust_domain=b"example.test:443"), PD, "a port is not allowed",
     "PERMISSION_DENIED (go-spiffe)"),
    # 1. Sentry's own identity and the control plane
    ("Sentry's ID", dict(app_id=b"dapr-sentry", namespace=NS.encode(), trust_domain=TD.encode()),
     PD, "app id 'dapr-sentry' " + OWN, "OK: spiffe://example.test/ns/dapr-system/dapr-sentry"),
    ("Sentry's ID, public", dict(app_id=b"dapr-sentry", namespace=NS.encode()), PD, OWN, "OK"),
    ("Sentry's ID, other namespace", dict(app_id=b"dapr-sentry"), PD, OWN, "OK"),
    ("Sentry's ID, upper case", dict(app_id=b"DAPR-SENTRY", namespace=NS.encode()), PD, OWN,
     "OK"),
    ("Sentry's ID, trailing dot", dict(app_id=b"dapr-sentry.", namespace=NS.encode()), PD,
     "parameter app-id cannot contain dots", "PERMISSION_DENIED"),
    ("Sentry's ID, trailing space", dict(app_id=b"dapr-sentry ", namespace=NS.encode()), PD,
     "white space is not allowed", "INTERNAL (failed to sign certificate)"),
    ("Sentry's ID, trailing NUL", dict(app_id=b"dapr-sentry\0", namespace=NS.encode()), PD,
     "a NUL byte is not allowed", "INTERNAL (failed to sign certificate)"),
    ("Sentry's ID, namespace upper case", dict(app_id=b"dapr-sentry", namespace=b"Dapr-System"),
     PD, "upper case is not allowed", "OK"),
    ("Sentry's ID, namespace with NUL", dict(app_id=b"dapr-sentry", namespace=b"dapr-system\0x"),
     PD, "a NUL byte is not allowed", "INTERNAL"),
    ("placement", dict(app_id=b"dapr-placement", namespace=NS.encode(), trust_domain=TD.encode()),
     PD, "app id 'dapr-placement' in Sentry's namespace 'dapr-system' " + CONTROL_PLANE, "OK"),
    ("scheduler", dict(app_id=b"dapr-scheduler", namespace=NS.encode()), PD, CONTROL_PLANE, "OK"),
    ("operator", dict(app_id=b"dapr-operator", namespace=NS.encode()), PD, CONTROL_PLANE, "OK"),
    ("injector", dict(app_id=b"dapr-injector", namespace=NS.encode()), PD, CONTROL_PLANE, "OK"),
    ("placement, other case", dict(app_id=b"Dapr-Placement", namespace=NS.encode()), PD,
     "is a control-plane id in another case", "OK"),
    ("placement, other namespace", dict(app_id=b"dapr-placement"), OK,
     "spiffe://public/ns/default/dapr-placement", "OK, same ID (not the control plane's)"),
    # 3. strings cut at a NUL byte, and the other characters a SPIFFE ID cannot hold
    ("NUL in app id", dict(app_id=b"a\0b"), PD,
     "app id 'a\\x00b': a NUL byte is not allowed", "INTERNAL (failed to sign certificate)"),
    ("NUL in namespace", dict(namespace=b"default\0evil"), PD,
     "namespace 'default\\x00evil': a NUL byte is not allowed", "INTERNAL"),
    ("NUL-only app id", dict(app_id=b"\0"), PD, "a NUL byte is not allowed", "INTERNAL"),
    ("app id of 65", dict(app_id=b"a" * 65), PD, "app ID must be 64 characters or less",
     "PERMISSION_DENIED, same text"),
    ("namespace of 64", dict(namespace=b"n" * 64), PD, "is 64 bytes long",
     "OK (no bound in Dapr)"),
    ("namespace of 300", dict(namespace=b"n" * 300), PD, "is 300 bytes long", "OK"),
    ("slash in app id", dict(app_id=b"a/b"), PD, "'/' is not allowed", "INTERNAL"),
    ("dot-dot namespace", dict(namespace=b".."), PD, "'.' is not allowed", "INTERNAL"),
    ("percent in app id", dict(app_id=b"a%2fb"), PD, "percent-encoding is not allowed",
     "INTERNAL"),
    ("newline in app id", dict(app_id=b"app\n"), PD, "control characters are not allowed",
     "INTERNAL"),
    ("non-ASCII app id", dict(app_id="café".encode()), PD, "only ASCII is allowed", "INTERNAL"),
    ("upper-case namespace", dict(namespace=b"Default"), PD, "upper case is not allowed",
     "OK (no rule in Dapr)"),
    ("underscore namespace", dict(namespace=b"my_ns"), PD, "DNS-1123 label", "OK"),
    ("invalid UTF-8 app id", dict(app_id=b"app\xff"), IA,
     "malformed SignCertificateRequest: field 1 (id) is not valid UTF-8",
     "INTERNAL (grpc: error unmarshalling request)"),
    ("invalid UTF-8 token", dict(token=b"\xc0\x80"), IA, "field 2 (token) is not valid UTF-8",
     "INTERNAL (grpc: error unmarshalling request)"),
]


def test_insecure_validator_issues_only_what_it_may(start_sentry):
    sentry = start_sentry("--allowed-trust-domains", "extra.test", trust_domain=TD,
                          env={"NAMESPACE": NS})
    check_table(sentry, INSECURE_TABLE)


SELF_HOSTED_TABLE = [
    ("placement", dict(app_id=b"dapr-placement", namespace=NS.encode(), trust_domain=TD.encode()),
     OK, "spiffe://example.test/ns/dapr-system/dapr-placement", "OK"),
    ("scheduler", dict(app_id=b"dapr-scheduler", namespace=NS.encode(), trust_domain=TD.encode()),
     OK, "spiffe://example.test/ns/dapr-system/dapr-scheduler", "OK"),
    ("Sentry's ID all the same", dict(app_id=b"dapr-sentry", namespace=NS.encode(),
                                      trust_domain=TD.encode()), PD, OWN, "OK"),
    ("placement, other case", dict(app_id=b"dapr-Placement", namespace=NS.encode()), PD,
     "in another case", "OK"),
    ("foreign trust domain all the same", dict(app_id=b"dapr-placement", namespace=NS.encode(),
                                               trust_domain=b"evil.test"), PD,
     "'evil.test' is not one this Sentry signs for (allowed: example.test, public; add trust "
     "domains with --allowed-trust-domains)", "OK"),
]


def test_flag_allows_a_self_hosted_control_plane_but_never_sentry(start_sentry):
    sentry = start_sentry("--allow-insecure-control-plane-ids", trust_domain=TD,
                          env={"NAMESPACE": NS})
    check_table(sentry, SELF_HOSTED_TABLE)


def test_jwks_validator_follows_the_same_rules(start_sentry, tmp_path):
    sentry, key = start_jwks_sentry(start_sentry, tmp_path, trust_domain=TD,
                                    env={"NAMESPACE": NS})
    now = int(time.time())

    def token(sub):
        return rs256_token(key, {"aud": [f"spiffe://{TD}/ns/{NS}/dapr-sentry"], "sub": sub,
                                 "iat": now, "nbf": now - 10, "exp": now + 600}).encode()

    placement = f"spiffe://{TD}/ns/{NS}/dapr-placement"
    table = [
        ("app with its token", dict(token=token("spiffe://public/ns/default/myapp")), OK,
         "spiffe://public/ns/default/myapp", "OK"),
        ("placement with its token", dict(app_id=b"dapr-placement", namespace=NS.encode(),
                                          trust_domain=TD.encode(), token=token(placement)),
         OK, placement, "OK"),
        ("placement with an app's token", dict(app_id=b"dapr-placement", namespace=NS.encode(),
                                               trust_domain=TD.encode(),
                                               token=token("spiffe://public/ns/default/myapp")),
         PD, "is not the requested identity", "PERMISSION_DENIED"),
        ("Sentry's ID with a token for it",
         dict(app_id=b"dapr-sentry", namespace=NS.encode(), trust_domain=TD.encode(),
              token=token(f"spiffe://{TD}/ns/{NS}/dapr-sentry")), PD, OWN, "OK"),
        ("foreign trust domain with a token for it",
         dict(trust_domain=b"evil.test", token=token("spiffe://evil.test/ns/default/myapp")), PD,
         "'evil.test' is not one this Sentry signs for", "OK"),
        ("token cut at a NUL",
         dict(token=token("spiffe://public/ns/default/myapp") + b"\0anything"), PD,
         "signature", "PERMISSION_DENIED"),
    ]
    check_table(sentry, [(name, dict(req, validator=3), *rest) for name, req, *rest in table])


def test_repeated_allowed_trust_domains_flags_add_up(start_sentry):
    sentry = start_sentry("--allowed-trust-domains", "a.test", "--allowed-trust-domains=b.test,c.test",
                          trust_domain=TD)
    check_table(sentry, [
        (td, dict(trust_domain=td.encode()), OK, f"spiffe://{td}/ns/default/myapp", "OK")
        for td in ("a.test", "b.test", "c.test", TD, "public")
    ] + [("unlisted", dict(trust_domain=b"d.test"), PD,
          "(allowed: example.test, public, a.test, b.test, c.test;", "OK")])


@pytest.mark.parametrize("flags,env,text", [
    (["--allowed-trust-domains", "Evil.test"], {}, "--allowed-trust-domains: trust domain: the "
     "trust domain must be lower case"),
    (["--allowed-trust-domains", "a.test,,b.test"], {}, "--allowed-trust-domains: empty trust "
     "domain"),
    (["--allowed-trust-domains", "evil.test."], {}, "--allowed-trust-domains: trust domain "
     "'evil.test.' has an empty label"),
    (["--trust-domain", "example.test."], {}, "--trust-domain: trust domain 'example.test.' has "
     "an empty label"),
    (["--allow-insecure-control-plane-ids=maybe"], {}, "--allow-insecure-control-plane-ids"),
    ([], {"NAMESPACE": "Dapr-System"}, "namespace 'Dapr-System': upper case is not allowed"),
    ([], {"NAMESPACE": "n" * 64}, "is 64 bytes long"),
])
def test_bad_settings_are_refused_at_start(tmp_path, flags, env, text):
    res = run([picket_bin(), "sentry", "--issuer-credentials", tmp_path, "--port", "0",
               "--healthz-port", "0", "--metrics-port", "0", *flags], timeout=15,
              env={**os.environ, **env})
    assert res.returncode != 0
    assert text in res.stderr, res.stderr
