# SPDX-License-Identifier: Apache-2.0
"""Certificate helpers for the tests, on python3-cryptography (an implementation independent of
picket's wolfSSL code): CSRs, certificate inspection, and Sentry-profile or deliberately broken
certificates made at test time."""
import re
import datetime
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = datetime.timezone.utc


def now():
    return datetime.datetime.now(UTC).replace(microsecond=0)


def new_key(kind="p256"):
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def sig_hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def csr_pem(key, cn=None):
    """A PKCS#10 CSR in PEM. Dapr 1.14+ sends an empty subject; cn adds CN and a DNS SAN."""
    builder = x509.CertificateSigningRequestBuilder()
    if cn:
        builder = builder.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), False)
    else:
        builder = builder.subject_name(x509.Name([]))
    return builder.sign(key, sig_hash(key)).public_bytes(serialization.Encoding.PEM)


def key_pem(key, fmt="pkcs8"):
    f = (serialization.PrivateFormat.PKCS8 if fmt == "pkcs8"
         else serialization.PrivateFormat.TraditionalOpenSSL)
    return key.private_bytes(serialization.Encoding.PEM, f, serialization.NoEncryption())


_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.S)


def certs_from_pem(data):
    """All certificates of a PEM bundle, in order (Debian 12's cryptography 38 has no
    load_pem_x509_certificates)."""
    if isinstance(data, str):
        data = data.encode()
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise ValueError("no certificate in PEM data")
    return [x509.load_pem_x509_certificate(b) for b in blocks]


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def uri_sans(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


def make_root(name="example.test", key=None, days=3650, not_before=None):
    key = key or new_key()
    nb = not_before or now() - datetime.timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(nb).not_valid_after(nb + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, sig_hash(key)))
    return cert, key


def make_issuer(root, root_key, subject="spiffe://example.test/ns/default/dapr-sentry",
                key=None, not_before=None, not_after=None):
    key = key or new_key()
    nb = not_before or now() - datetime.timedelta(minutes=5)
    na = not_after or nb + datetime.timedelta(days=365)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject)]))
            .issuer_name(root.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root_key.public_key()), False)
            .sign(root_key, sig_hash(root_key)))
    return cert, key


def make_leaf(issuer, issuer_key, uri, key=None, not_before=None, not_after=None, uris=None,
              ca=False):
    """A workload certificate in Dapr's 1.14+ profile: empty subject, one critical URI SAN,
    KU digitalSignature, EKU serverAuth + clientAuth, no BasicConstraints (unless ca)."""
    key = key or new_key()
    nb = not_before or now() - datetime.timedelta(minutes=1)
    na = not_after or nb + datetime.timedelta(hours=1)
    names = [x509.UniformResourceIdentifier(u) for u in (uris if uris is not None else [uri])]
    b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.SubjectAlternativeName(names), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, ca, ca, False, False),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                               ExtendedKeyUsageOID.CLIENT_AUTH]), False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), False))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return b.sign(issuer_key, sig_hash(issuer_key))


def write_creds(directory, root, issuer, issuer_key, key_fmt="pkcs8", extra_roots=()):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "ca.crt"), "wb") as f:
        f.write(cert_pem(root) + b"".join(cert_pem(r) for r in extra_roots))
    with open(os.path.join(directory, "issuer.crt"), "wb") as f:
        f.write(cert_pem(issuer))
    with open(os.path.join(directory, "issuer.key"), "wb") as f:
        f.write(key_pem(issuer_key, key_fmt))
    os.chmod(os.path.join(directory, "issuer.key"), 0o600)


def openssl_verify(ca_file, untrusted_file, leaf_file):
    return subprocess.run(["openssl", "verify", "-CAfile", ca_file, "-untrusted", untrusted_file,
                           leaf_file], capture_output=True, text=True)


# The Dapr guide's OpenSSL recipe (root.conf / issuer.conf), verbatim in content.
SEED_ROOT_CONF = """[req]
distinguished_name = req_distinguished_name
x509_extensions = v3_req
prompt = no
[req_distinguished_name]
C = US
ST = VA
L = Daprville
O = dapr.io/sentry
OU = dapr.io/sentry
CN = cluster.local
[v3_req]
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = @alt_names
[alt_names]
DNS.1 = cluster.local
"""

SEED_ISSUER_CONF = SEED_ROOT_CONF.replace("basicConstraints = critical, CA:true",
                                          "basicConstraints = critical, CA:true, pathlen:0")


def seed_recipe(directory, reuse_root_key=False):
    """Run the guide's commands in directory and rename the results as Sentry expects them."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "root.conf"), "w") as f:
        f.write(SEED_ROOT_CONF)
    with open(os.path.join(directory, "issuer.conf"), "w") as f:
        f.write(SEED_ISSUER_CONF)
    script = ""
    if not reuse_root_key:
        script += "openssl ecparam -genkey -name prime256v1 | openssl ec -out root.key\n"
    script += """openssl req -new -nodes -sha256 -key root.key -out root.csr -config root.conf -extensions v3_req
openssl x509 -req -sha256 -days 365 -in root.csr -signkey root.key -outform PEM -out root.pem -extfile root.conf -extensions v3_req
openssl ecparam -genkey -name prime256v1 | openssl ec -out issuer.key
openssl req -new -sha256 -key issuer.key -out issuer.csr -config issuer.conf -extensions v3_req
openssl x509 -req -in issuer.csr -CA root.pem -CAkey root.key -CAcreateserial -outform PEM -out issuer.pem -days 365 -sha256 -extfile issuer.conf -extensions v3_req
cp root.pem ca.crt && cp issuer.pem issuer.crt
"""
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=directory, check=True,
                   capture_output=True)
