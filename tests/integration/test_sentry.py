# SPDX-License-Identifier: Apache-2.0
"""`picket sentry` against independent peers: requests made with python3-h2 over Python's ssl,
CSRs and checks with python3-cryptography, chains checked with `openssl verify`."""
import base64
import datetime
import json
import os
import stat
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import pki
import sentry_pb
from harness import picket_bin, run, wait_for
from sentry_pb import INTERNAL, INVALID_ARGUMENT, OK, PERMISSION_DENIED

HOUR = 3600


def leaf_and_chain(res):
    certs = pki.certs_from_pem(res.response.workload_certificate)
    return certs[0], certs[1:]


def test_signs_a_dapr_profile_workload_certificate(start_sentry, tmp_path):
    sentry = start_sentry()
    key = pki.new_key()
    before = pki.now()
    res = sentry.sign(app_id="myapp", namespace="default", key=key)
    assert res.status == OK, res.message
    assert res.alpn == "h2"
    assert res.tls_version == "TLSv1.3"

    # Sentry presents its own SPIFFE ID, spiffe://<trust domain>/ns/<NAMESPACE>/dapr-sentry.
    server_cert = x509.load_der_x509_certificate(res.peer_cert_der)
    assert pki.uri_sans(server_cert) == ["spiffe://localhost/ns/default/dapr-sentry"]

    leaf, chain = leaf_and_chain(res)
    assert len(chain) == 1, "workload_certificate must be leaf + issuer, without the root"
    issuer = chain[0]
    # Profile of Dapr 1.14+ (SENTRY-PROTOCOL.md §4).
    assert leaf.version == x509.Version.v3
    assert len(leaf.subject) == 0
    assert leaf.issuer == issuer.subject
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://public/ns/default/myapp"]
    assert san.value.get_values_for_type(x509.DNSName) == []
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert 0 < leaf.serial_number < 2**128
    assert leaf.signature_hash_algorithm.name == "sha256"
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    # NotBefore = now - 15m skew, NotAfter = now + 24h, second precision.
    nb = leaf.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    na = leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    assert abs((nb - (before - datetime.timedelta(minutes=15))).total_seconds()) <= 5
    assert abs((na - (before + datetime.timedelta(hours=24))).total_seconds()) <= 5
    # Response layout: the roots as one element, valid_until = the leaf's NotAfter.
    with open(sentry.ca_file, "rb") as f:
        ca_pem = f.read()
    assert len(res.response.trust_chain_certificates) == 1
    assert pki.certs_from_pem(res.response.trust_chain_certificates[0]) == pki.certs_from_pem(
        ca_pem)
    assert res.response.valid_until.seconds == int(na.timestamp())
    assert res.response.valid_until.nanos == 0
    assert not res.response.HasField("jwt")

    # An independent verifier accepts the chain.
    (tmp_path / "leaf.pem").write_bytes(pki.cert_pem(leaf))
    (tmp_path / "issuer.pem").write_bytes(pki.cert_pem(issuer))
    v = pki.openssl_verify(sentry.ca_file, str(tmp_path / "issuer.pem"), str(tmp_path / "leaf.pem"))
    assert v.returncode == 0, v.stdout + v.stderr


def test_generated_credentials_follow_dapr_and_are_private(start_sentry):
    sentry = start_sentry(trust_domain="example.test", env={"NAMESPACE": "dapr-system"})
    for name in ("ca.crt", "issuer.crt", "issuer.key"):
        mode = stat.S_IMODE(os.stat(os.path.join(sentry.creds_dir, name)).st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    with open(sentry.ca_file, "rb") as f:
        [root] = pki.certs_from_pem(f.read())
    with open(os.path.join(sentry.creds_dir, "issuer.crt"), "rb") as f:
        [issuer] = pki.certs_from_pem(f.read())
    assert root.subject.rfc4514_string() == "O=example.test"
    assert issuer.subject.rfc4514_string() == "O=spiffe://example.test/ns/dapr-system/dapr-sentry"
    for cert in (root, issuer):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length is None
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        life = cert.not_valid_after - cert.not_valid_before
        assert abs(life.total_seconds() - (365 * 24 * HOUR + 15 * 60)) <= 5
    assert issuer.extensions.get_extension_for_class(x509.KeyUsage).value.crl_sign
    res = sentry.sign()
    assert res.status == OK, res.message
    server_cert = x509.load_der_x509_certificate(res.peer_cert_der)
    assert pki.uri_sans(server_cert) == ["spiffe://example.test/ns/dapr-system/dapr-sentry"]


def test_ed25519_credentials_and_csrs(start_sentry):
    sentry = start_sentry("--key-type", "ed25519")
    with open(sentry.ca_file, "rb") as f:
        [root] = pki.certs_from_pem(f.read())
    assert isinstance(root.public_key(), ed25519.Ed25519PublicKey)
    for kind in ("p256", "ed25519"):
        key = pki.new_key(kind)
        res = sentry.sign(key=key)
        assert res.status == OK, res.message
        leaf, _ = leaf_and_chain(res)
        # Signed with the issuer key's algorithm, whatever the CSR's key type (Dapr 1.18).
        assert leaf.signature_algorithm_oid.dotted_string == "1.3.101.112"
        assert leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
            key.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def test_request_trust_domain_and_namespace_make_the_identity(start_sentry):
    sentry = start_sentry("--allowed-trust-domains", "example.org")
    res = sentry.sign(app_id="orders", namespace="shop", trust_domain="example.org")
    assert res.status == OK, res.message
    leaf, _ = leaf_and_chain(res)
    assert pki.uri_sans(leaf) == ["spiffe://example.org/ns/shop/orders"]


def test_identity_never_comes_from_the_csr(start_sentry):
    sentry = start_sentry()
    res = sentry.sign(app_id="myapp", csr=pki.csr_pem(pki.new_key(), cn="admin"))
    assert res.status == OK, res.message
    leaf, _ = leaf_and_chain(res)
    assert pki.uri_sans(leaf) == ["spiffe://public/ns/default/myapp"]
    assert len(leaf.subject) == 0


def test_config_file_sets_ttl_and_skew(start_sentry, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n"
                   "  name: daprsystem\n  namespace: default\nspec:\n  mtls:\n"
                   "    enabled: true\n    workloadCertTTL: \"25s\"\n"
                   "    allowedClockSkew: \"1m\"\n")
    sentry = start_sentry(f"--config={cfg}")
    before = pki.now()
    res = sentry.sign()
    assert res.status == OK, res.message
    leaf, _ = leaf_and_chain(res)
    na = leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    nb = leaf.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    assert abs((na - before).total_seconds() - 25) <= 3
    assert abs((before - nb).total_seconds() - 60) <= 3


def test_missing_config_file_is_an_error(tmp_path):
    res = run([picket_bin(), "sentry", "--issuer-credentials", tmp_path, "--port", "0",
               "--config", tmp_path / "nope.yaml"], timeout=10)
    assert res.returncode != 0
    assert "nope.yaml" in res.stderr and "does not exist" in res.stderr


def test_malformed_config_names_file_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("spec:\n  mtls:\n    workloadCertTTL: \"24x\"\n")
    res = run([picket_bin(), "sentry", "--issuer-credentials", tmp_path, "--port", "0",
               "--config", cfg], timeout=10)
    assert res.returncode != 0
    assert "bad.yaml" in res.stderr and "workloadCertTTL" in res.stderr


def test_seed_openssl_recipe_credentials_load_and_issue(start_sentry, tmp_path):
    creds = tmp_path / "seed"
    pki.seed_recipe(str(creds))
    sentry = start_sentry("--issuer-credentials", str(creds), trust_domain="cluster.local",
                          creds_dir=str(creds))
    res = sentry.sign()
    assert res.status == OK, res.message
    leaf, chain = leaf_and_chain(res)
    (tmp_path / "leaf.pem").write_bytes(pki.cert_pem(leaf))
    v = pki.openssl_verify(str(creds / "ca.crt"), str(creds / "issuer.crt"),
                           str(tmp_path / "leaf.pem"))
    assert v.returncode == 0, v.stdout + v.stderr
    server_cert = x509.load_der_x509_certificate(res.peer_cert_der)
    assert pki.uri_sans(server_cert) == ["spiffe://cluster.local/ns/default/dapr-sentry"]


def test_step_style_root_and_intermediate_load(start_sentry, tmp_path):
    """The profile `step certificate create --profile root-ca / intermediate-ca` produces."""
    root_key, issuer_key = pki.new_key(), pki.new_key()
    nb = pki.now() - datetime.timedelta(minutes=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster.local")])
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(nb).not_valid_after(nb + datetime.timedelta(days=3650))
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()),
                           False)
            .sign(root_key, hashes.SHA256()))
    issuer = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                          "cluster.local")]))
              .issuer_name(name).public_key(issuer_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(nb)
              .not_valid_after(nb + datetime.timedelta(hours=8760))
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                           False), critical=True)
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                  issuer_key.public_key()), False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                  root_key.public_key()), False)
              .sign(root_key, hashes.SHA256()))
    creds = tmp_path / "step"
    pki.write_creds(str(creds), root, issuer, issuer_key, key_fmt="traditional")
    sentry = start_sentry(creds_dir=str(creds))
    assert sentry.sign().status == OK


def bad_creds_start(tmp_path, creds):
    return run([picket_bin(), "sentry", "--issuer-credentials", creds, "--port", "0",
                "--healthz-port", "0", "--metrics-port", "0"], timeout=15)


def test_mismatched_key_is_refused(tmp_path):
    root, rkey = pki.make_root()
    issuer, _ = pki.make_issuer(root, rkey)
    pki.write_creds(str(tmp_path / "c"), root, issuer, pki.new_key())
    res = bad_creds_start(tmp_path, tmp_path / "c")
    assert res.returncode != 0
    assert "issuer.key" in res.stderr and "does not match" in res.stderr


def test_expired_issuer_is_refused(tmp_path):
    root, rkey = pki.make_root()
    past = pki.now() - datetime.timedelta(days=30)
    issuer, ikey = pki.make_issuer(root, rkey, not_before=past,
                                   not_after=past + datetime.timedelta(days=1))
    pki.write_creds(str(tmp_path / "c"), root, issuer, ikey)
    res = bad_creds_start(tmp_path, tmp_path / "c")
    assert res.returncode != 0
    assert "issuer.crt" in res.stderr and "expired" in res.stderr


def test_issuer_from_another_root_is_refused(tmp_path):
    root, rkey = pki.make_root()
    other, okey = pki.make_root(name="other.test")
    issuer, ikey = pki.make_issuer(other, okey)
    pki.write_creds(str(tmp_path / "c"), root, issuer, ikey)
    res = bad_creds_start(tmp_path, tmp_path / "c")
    assert res.returncode != 0
    print(res.stderr)
    assert "issuer.crt" in res.stderr and "ca.crt" in res.stderr


def test_garbage_pem_is_refused(tmp_path):
    root, rkey = pki.make_root()
    issuer, ikey = pki.make_issuer(root, rkey)
    pki.write_creds(str(tmp_path / "c"), root, issuer, ikey)
    (tmp_path / "c" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
                                           "-----END CERTIFICATE-----\n")
    res = bad_creds_start(tmp_path, tmp_path / "c")
    assert res.returncode != 0
    assert "ca.crt" in res.stderr


def test_non_root_trust_anchor_is_refused(tmp_path):
    root, rkey = pki.make_root()
    issuer, ikey = pki.make_issuer(root, rkey)
    pki.write_creds(str(tmp_path / "c"), issuer, issuer, ikey)
    res = bad_creds_start(tmp_path, tmp_path / "c")
    assert res.returncode != 0
    assert "ca.crt" in res.stderr and "self-signed" in res.stderr


# Each validation rule of SENTRY-PROTOCOL.md §4, broken once, with the status Dapr returns.
@pytest.mark.parametrize("fields,status,text", [
    (dict(validator=2), INVALID_ARGUMENT, "the requested validator is not enabled"),
    (dict(validator=3), INVALID_ARGUMENT, "the requested validator is not enabled"),
    (dict(validator=99), INVALID_ARGUMENT, "the requested validator is not enabled"),
    (dict(app_id=""), PERMISSION_DENIED, "parameter app-id cannot be empty"),
    (dict(app_id="my.app"), PERMISSION_DENIED, "parameter app-id cannot contain dots"),
    (dict(app_id="a" * 65), PERMISSION_DENIED, "app ID must be 64 characters or less"),
    (dict(namespace=""), PERMISSION_DENIED, "namespace is required"),
    (dict(csr=b""), PERMISSION_DENIED, "CSR is required"),
    (dict(app_id="my/app"), PERMISSION_DENIED, "app id"),
    (dict(namespace="a b"), PERMISSION_DENIED, "namespace"),
    (dict(trust_domain="Example.COM"), PERMISSION_DENIED, "trust domain"),
    (dict(csr=b"hello"), INVALID_ARGUMENT, "invalid certificate signing request"),
    (dict(csr=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
     INVALID_ARGUMENT, "invalid certificate signing request"),
    (dict(csr=b"-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQA=\n"
               b"-----END CERTIFICATE REQUEST-----\n"),
     INVALID_ARGUMENT, "failed to parse certificate signing request"),
])
def test_validation_rules(start_sentry, fields, status, text):
    sentry = start_sentry()
    res = sentry.sign(**fields)
    assert res.status == status, (res.status, res.message)
    assert text in res.message


def test_csr_with_bad_signature_is_invalid(start_sentry):
    sentry = start_sentry()
    pem = pki.csr_pem(pki.new_key())
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the ECDSA signature
    bad = (b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)) +
           b"-----END CERTIFICATE REQUEST-----\n")
    res = sentry.sign(csr=bad)
    assert res.status == INVALID_ARGUMENT, (res.status, res.message)
    assert res.message in ("invalid signature",) or "failed to parse" in res.message


def test_unknown_method_and_garbage_body(start_sentry):
    sentry = start_sentry()
    import grpc_h2
    res = grpc_h2.call("127.0.0.1", sentry.port, "/dapr.proto.sentry.v1.CA/Nope", b"",
                       ca_file=sentry.ca_file)
    assert res.status == sentry_pb.UNIMPLEMENTED
    res = sentry.sign(raw=b"\xff\xff\xff\xff")
    assert res.status == INVALID_ARGUMENT
    # Still serving afterwards.
    assert sentry.sign().status == OK


def test_client_without_alpn_h2_is_refused(start_sentry):
    sentry = start_sentry()
    import grpc_h2
    import ssl
    ctx = grpc_h2.tls_context(sentry.ca_file, alpn=("http/1.1",))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        grpc_h2.call("127.0.0.1", sentry.port, sentry_pb.METHOD, b"", ctx=ctx)
    assert sentry.sign().status == OK


def test_healthz_and_dapr_metrics(start_sentry):
    from conftest import http_get
    sentry = start_sentry()
    assert sentry.sign().status == OK
    assert sentry.sign(app_id="").status == PERMISSION_DENIED
    status, body = http_get(sentry.healthz_port, "/healthz")
    assert status == 200
    status, text = sentry.metrics()
    assert status == 200
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values["dapr_sentry_cert_sign_request_received_total"] == 2
    assert values["dapr_sentry_cert_sign_success_total"] == 1
    assert values['dapr_sentry_cert_sign_failure_total{reason="sign"}'] == 1
    assert values["dapr_sentry_issuercert_changed_total"] == 0
    assert "dapr_sentry_servercert_issue_failed_total" in values
    with open(os.path.join(sentry.creds_dir, "issuer.crt"), "rb") as f:
        [issuer] = pki.certs_from_pem(f.read())
    assert values["dapr_sentry_issuercert_expiry_timestamp"] == issuer.not_valid_after.replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert "picket_sentry_root_cert_expiry_timestamp_seconds" in values


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rs256_token(key, claims, kid="k1"):
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    sig = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url(sig)}"


def start_jwks_sentry(start_sentry, tmp_path, **kw):
    """A picket sentry whose only validator is JWKS, with a new RSA key as kid k1; returns the
    sentry and the key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                      "n": b64url(nums.n.to_bytes(256, "big")),
                      "e": b64url(nums.e.to_bytes(3, "big"))}]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    cfg = tmp_path / "config.yaml"
    cfg.write_text("spec:\n  mtls:\n    tokenValidators:\n      - name: jwks\n        options:\n"
                   f"          source: \"{tmp_path / 'jwks.json'}\"\n")
    return start_sentry(f"--config={cfg}", **kw), key


def test_jwks_validator(start_sentry, tmp_path):
    sentry, key = start_jwks_sentry(start_sentry, tmp_path)
    now = int(time.time())
    claims = {"aud": ["spiffe://localhost/ns/default/dapr-sentry"],
              "sub": "spiffe://public/ns/default/myapp", "iat": now, "nbf": now - 10,
              "exp": now + 600}
    good = rs256_token(key, claims)
    assert sentry.sign(validator=3, token=good).status == OK
    # No validator named: there is no default once JWKS is configured.
    res = sentry.sign(validator=0, token=good)
    assert res.status == INVALID_ARGUMENT
    assert "validator name must be specified" in res.message
    assert sentry.sign(validator=1).status == INVALID_ARGUMENT
    res = sentry.sign(validator=3)
    assert res.status == PERMISSION_DENIED and "does not contain a token" in res.message
    res = sentry.sign(validator=3, app_id="other", token=good)
    assert res.status == PERMISSION_DENIED
    bad_aud = rs256_token(key, dict(claims, aud=["someone-else"]))
    assert sentry.sign(validator=3, token=bad_aud).status == PERMISSION_DENIED
    expired = rs256_token(key, dict(claims, exp=now - 3600, nbf=now - 7200, iat=now - 7200))
    assert sentry.sign(validator=3, token=expired).status == PERMISSION_DENIED
    forged = rs256_token(rsa.generate_private_key(public_exponent=65537, key_size=2048), claims)
    assert sentry.sign(validator=3, token=forged).status == PERMISSION_DENIED


def rotate_issuer(creds_dir, root, root_key):
    """Write a new issuer signed by the same root key, each file atomically."""
    issuer, ikey = pki.make_issuer(root, root_key)
    for name, data in (("issuer.key", pki.key_pem(ikey)), ("issuer.crt", pki.cert_pem(issuer))):
        tmp = os.path.join(creds_dir, name + ".new")
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.rename(tmp, os.path.join(creds_dir, name))
    return issuer


def test_reload_new_issuer_same_root_without_failed_calls(start_sentry, tmp_path):
    root, rkey = pki.make_root(name="localhost")
    issuer, ikey = pki.make_issuer(root, rkey,
                                   subject="spiffe://localhost/ns/default/dapr-sentry")
    creds = str(tmp_path / "creds")
    pki.write_creds(creds, root, issuer, ikey)
    sentry = start_sentry(creds_dir=creds)
    results, stop = [], threading.Event()

    def caller():
        while not stop.is_set():
            res = sentry.sign()
            results.append((res.status, res.message,
                            leaf_and_chain(res)[1][0].serial_number if res.status == OK else 0))

    t = threading.Thread(target=caller)
    t.start()
    try:
        wait_for(lambda: len(results) >= 5, 20, what="calls before the reload")
        new_issuer = rotate_issuer(creds, root, rkey)
        wait_for(lambda: any(s == new_issuer.serial_number for _, _, s in results[-3:]), 30,
                 what="a certificate from the new issuer")
        n = len(results)
        wait_for(lambda: len(results) >= n + 5, 20, what="calls after the reload")
    finally:
        stop.set()
        t.join(30)
    failed = [r for r in results if r[0] != OK]
    assert not failed, failed[:3]
    assert sentry.proc.output().count("credentials reloaded") >= 1
    values = sentry.metrics()[1]
    assert "dapr_sentry_issuercert_changed_total 1" in values


def test_reload_with_bad_set_keeps_serving_the_old_one(start_sentry, tmp_path):
    sentry = start_sentry()
    with open(os.path.join(sentry.creds_dir, "issuer.crt"), "rb") as f:
        [issuer] = pki.certs_from_pem(f.read())
    mark = len(sentry.proc.output())
    # A key that matches nothing: the new set must be refused.
    with open(os.path.join(sentry.creds_dir, "issuer.key"), "wb") as f:
        f.write(pki.key_pem(pki.new_key()))
    sentry.proc.wait_log(r"credentials reload refused.*does not match", timeout=20, start=mark)
    res = sentry.sign()
    assert res.status == OK, res.message
    assert leaf_and_chain(res)[1][0].serial_number == issuer.serial_number


def test_builtin_client_fetches_a_certificate(start_sentry, tmp_path):
    sentry = start_sentry()
    res = run([picket_bin(), "cert", "fetch", "--sentry-address", f"127.0.0.1:{sentry.port}",
               "--trust-anchors-file", sentry.ca_file, "--app-id", "demo"], timeout=20)
    assert res.returncode == 0, res.stderr
    assert "spiffe://public/ns/default/demo" in res.stdout
    assert "not_after" in res.stdout or "expires" in res.stdout


def test_builtin_client_names_the_trust_domain_trap(start_sentry, tmp_path):
    sentry = start_sentry(trust_domain="cluster.local")
    res = run([picket_bin(), "cert", "fetch", "--sentry-address", f"127.0.0.1:{sentry.port}",
               "--trust-anchors-file", sentry.ca_file, "--app-id", "demo"], timeout=20)
    assert res.returncode != 0
    assert "spiffe://cluster.local/ns/default/dapr-sentry" in res.stderr
    assert "spiffe://localhost/ns/default/dapr-sentry" in res.stderr
    assert "--control-plane-trust-domain" in res.stderr
    res = run([picket_bin(), "cert", "fetch", "--sentry-address", f"127.0.0.1:{sentry.port}",
               "--trust-anchors-file", sentry.ca_file, "--app-id", "demo",
               "--control-plane-trust-domain", "cluster.local"], timeout=20)
    assert res.returncode == 0, res.stderr


def test_short_ttl_renews_its_own_certificate_at_half_its_life(start_sentry, tmp_path):
    # A TTL far below the default 15 min skew: NotBefore lies 15 min back, which must not count
    # as validity already spent. The serving certificate is renewed every 5 s (half of 10 s),
    # not every second.
    cfg = tmp_path / "config.yaml"
    cfg.write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n"
                   "  name: daprsystem\n  namespace: default\nspec:\n  mtls:\n"
                   "    enabled: true\n    workloadCertTTL: \"10s\"\n")
    started = time.monotonic()
    sentry = start_sentry(f"--config={cfg}")

    def issues():
        return sentry.proc.output().count("server certificate issued")

    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        # One issue at start, one every 5 s since, and one to spare for a slow start.
        allowed = 2 + int((time.monotonic() - started) / 5)
        assert issues() <= allowed, sentry.proc.output()
        time.sleep(0.2)
    wait_for(lambda: issues() >= 2, timeout=10, what="the first renewal")
    assert "next_renewal_in=5s" in sentry.proc.output()
    assert sentry.sign().status == OK
