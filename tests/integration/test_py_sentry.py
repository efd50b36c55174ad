# SPDX-License-Identifier: Apache-2.0
"""The independent Sentry of py_sentry.py (grpcio + python3-cryptography) against picket's own
client (`picket cert fetch`), python3-h2 and grpcio clients: it must issue what Dapr 1.14+
issues, and each of its misbehaviours must be refused by picket with a reason."""
import datetime
import os

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

import grpc_h2
import pki
import sentry_pb
from harness import picket_bin, run
from sentry_pb import OK

ED25519_OID = "1.3.101.112"
UNAVAILABLE = 14


def fetch(sentry, *extra, app_id="demo"):
    return run([picket_bin(), "cert", "fetch", "--sentry-address", sentry.address,
                "--trust-anchors-file", sentry.ca_file, "--app-id", app_id, "--timeout", "5s",
                *extra], timeout=20)


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def h2_sign(sentry, app_id="myapp", namespace="default", trust_domain="", key=None):
    pb = sentry_pb.load()
    key = key or pki.new_key()
    req = pb.SignCertificateRequest(id=app_id, namespace=namespace, trust_domain=trust_domain,
                                    certificate_signing_request=pki.csr_pem(key))
    res = grpc_h2.call("127.0.0.1", sentry.port, sentry_pb.METHOD, req.SerializeToString(),
                       ca_file=sentry.ca_file)
    res.response = None
    if res.status == OK:
        res.response = pb.SignCertificateResponse.FromString(res.messages[0])
    return res, key


@pytest.mark.parametrize("key_type", ["p256", "ed25519"])
def test_picket_cert_fetch_gets_a_certificate(py_sentry, tmp_path, key_type):
    sentry = py_sentry(ttl=5, key_type=key_type)
    out = tmp_path / "out"
    out.mkdir()
    res = fetch(sentry, "--out-dir", str(out))
    assert res.returncode == 0, res.stderr
    assert "spiffe_id: spiffe://public/ns/default/demo" in res.stdout
    assert "chain: 2 certificates" in res.stdout

    [req] = sentry.requests
    assert (req.id, req.namespace, req.trust_domain, req.token, req.token_validator) == (
        "demo", "default", "", "", 0)
    leaf, issuer = pki.certs_from_pem((out / "cert.pem").read_bytes())
    # The key picket generated is the one in the CSR and in the certificate (a P-256 key,
    # whatever the CA's type); the leaf is signed with the issuer's algorithm.
    assert spki(leaf.public_key()) == req.csr_public_key
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    key = serialization.load_pem_private_key((out / "key.pem").read_bytes(), None)
    assert spki(key.public_key()) == req.csr_public_key
    if key_type == "ed25519":
        assert leaf.signature_algorithm_oid.dotted_string == ED25519_OID
        assert isinstance(issuer.public_key(), ed25519.Ed25519PublicKey)
    else:
        assert leaf.signature_hash_algorithm.name == "sha256"
    assert (out / "bundle.pem").read_bytes() == sentry.ca_pem
    (tmp_path / "leaf.pem").write_bytes(pki.cert_pem(leaf))
    (tmp_path / "issuer.pem").write_bytes(pki.cert_pem(issuer))
    v = pki.openssl_verify(sentry.ca_file, str(tmp_path / "issuer.pem"),
                           str(tmp_path / "leaf.pem"))
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.parametrize("mode,reasons", [
    ("wrong_id", ["spiffe://public/ns/default/intruder", "instead of the requested",
                  "spiffe://public/ns/default/demo"]),
    ("two_sans", ["2 URI SANs", "instead of the requested"]),
    ("foreign_root", ["does not verify against the trust anchors"]),
    ("expired", ["expired"]),
    ("garbage", ["workload_certificate", "PEM"]),
    ("unavailable", ["UNAVAILABLE"]),
])
def test_picket_cert_fetch_refuses_a_bad_answer(py_sentry, tmp_path, mode, reasons):
    sentry = py_sentry()
    sentry.mode = mode
    out = tmp_path / "out"
    out.mkdir()
    res = fetch(sentry, "--out-dir", str(out))
    assert res.returncode != 0, res.stdout
    for reason in reasons:
        assert reason in res.stderr, res.stderr
    assert len(sentry.requests) == 1
    assert os.listdir(out) == [], "nothing may be written from a refused answer"
    # The same server, behaving again, is accepted: the refusal was about the answer.
    sentry.mode = "normal"
    res = fetch(sentry)
    assert res.returncode == 0, res.stderr


def test_every_request_carries_a_fresh_key(py_sentry):
    sentry = py_sentry()
    for _ in range(3):
        res = fetch(sentry)
        assert res.returncode == 0, res.stderr
    keys = [r.csr_public_key for r in sentry.requests]
    assert len(keys) == 3 and all(keys) and len(set(keys)) == 3
    assert [spki(c.public_key()) for c in sentry.issued] == keys


def test_stop_and_start_on_the_same_port(py_sentry):
    sentry = py_sentry()
    address = sentry.address
    sentry.stop()
    res = fetch(sentry)
    assert res.returncode != 0
    assert address in res.stderr
    sentry.start()
    assert sentry.address == address
    res = fetch(sentry)
    assert res.returncode == 0, res.stderr
    assert len(sentry.requests) == 1


def test_h2_client_gets_a_dapr_profile_certificate(py_sentry, tmp_path):
    sentry = py_sentry(ttl=5, skew=0, trust_domain="example.test", namespace="dapr-system")
    sentry.skew = 30  # changed while it runs
    before = pki.now()
    res, key = h2_sign(sentry, app_id="orders", namespace="shop", trust_domain="example.org")
    assert res.status == OK, res.message
    assert res.alpn == "h2"
    server_cert = x509.load_der_x509_certificate(res.peer_cert_der)
    assert pki.uri_sans(server_cert) == ["spiffe://example.test/ns/dapr-system/dapr-sentry"]
    assert sentry.server_id == "spiffe://example.test/ns/dapr-system/dapr-sentry"

    certs = pki.certs_from_pem(res.response.workload_certificate)
    assert len(certs) == 2, "leaf + issuer, without the root"
    leaf, issuer = certs
    assert len(leaf.subject) == 0 and leaf.issuer == issuer.subject
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/ns/shop/orders"]
    assert san.value.get_values_for_type(x509.DNSName) == []
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not (ku.value.key_encipherment or ku.value.key_cert_sign or ku.value.crl_sign)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert 0 < leaf.serial_number < 2**128
    assert spki(leaf.public_key()) == spki(key.public_key())
    nb = leaf.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    na = leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    assert abs((before - nb).total_seconds() - 30) <= 2
    assert abs((na - before).total_seconds() - 5) <= 2
    assert res.response.valid_until.seconds == int(na.timestamp())
    assert list(res.response.trust_chain_certificates) == [sentry.ca_pem]
    (tmp_path / "leaf.pem").write_bytes(pki.cert_pem(leaf))
    (tmp_path / "issuer.pem").write_bytes(pki.cert_pem(issuer))
    v = pki.openssl_verify(sentry.ca_file, str(tmp_path / "issuer.pem"),
                           str(tmp_path / "leaf.pem"))
    assert v.returncode == 0, v.stdout + v.stderr

    [req] = sentry.requests
    assert (req.id, req.namespace, req.trust_domain) == ("orders", "shop", "example.org")


def test_h2_client_sees_the_error_modes(py_sentry):
    sentry = py_sentry()
    sentry.mode = "unavailable"
    res, _ = h2_sign(sentry)
    assert res.status == UNAVAILABLE and "unavailable" in res.message
    sentry.mode = "expired"
    res, _ = h2_sign(sentry)
    assert res.status == OK
    leaf = pki.certs_from_pem(res.response.workload_certificate)[0]
    assert leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc) < pki.now()
    assert res.response.valid_until.seconds == int(
        leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp())
    sentry.mode = "normal"
    res, _ = h2_sign(sentry, app_id="")
    assert res.status == sentry_pb.PERMISSION_DENIED
    res, _ = h2_sign(sentry)
    assert res.status == OK
    assert [r.mode for r in sentry.requests] == ["unavailable", "expired", "normal", "normal"]


def test_grpcio_client_can_call_it(py_sentry):
    # grpcio's client checks a DNS name, so this server also carries DNS:localhost (a real
    # Sentry's certificate has only the URI SAN; picket and the h2 client check that instead).
    sentry = py_sentry(key_type="ed25519", server_dns_names=["localhost"])
    pb = sentry_pb.load()
    creds = grpc.ssl_channel_credentials(root_certificates=sentry.ca_pem)
    with grpc.secure_channel(sentry.address, creds,
                             options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
        sign = ch.unary_unary(sentry_pb.METHOD,
                              request_serializer=pb.SignCertificateRequest.SerializeToString,
                              response_deserializer=pb.SignCertificateResponse.FromString)
        key = pki.new_key("ed25519")
        res = sign(pb.SignCertificateRequest(id="myapp", namespace="default",
                                             certificate_signing_request=pki.csr_pem(key)),
                   timeout=5)
        leaf = pki.certs_from_pem(res.workload_certificate)[0]
        assert pki.uri_sans(leaf) == ["spiffe://public/ns/default/myapp"]
        assert leaf.signature_algorithm_oid.dotted_string == ED25519_OID
        assert spki(leaf.public_key()) == spki(key.public_key())
        sentry.mode = "unavailable"
        with pytest.raises(grpc.RpcError) as e:
            sign(pb.SignCertificateRequest(id="myapp", namespace="default",
                                           certificate_signing_request=pki.csr_pem(key)),
                 timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
