# SPDX-License-Identifier: Apache-2.0
"""`picket cert create-root | create-issuer | inspect`, checked with tools independent of picket:
the OpenSSL command line (the seed guide's own recipe, run here, is the reference for the openssl
profile), python3-cryptography, and a real `picket sentry` that must accept what was created."""
import datetime
import hashlib
import os
import re
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtensionOID, NameOID

import pki
import sentry_pb
from harness import picket_bin, run

# The guide's root.conf; issuer.conf adds pathlen:0 to basicConstraints.
RECIPE_CONF = """[req]
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
basicConstraints = critical, CA:true{pathlen}
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = @alt_names
[alt_names]
DNS.1 = cluster.local
"""


def sh(cmd, cwd):
    subprocess.run(cmd, shell=True, check=True, cwd=cwd, capture_output=True)


def picket_cert(*args, cwd, check=True):
    res = run([os.path.abspath(picket_bin()), "cert", *args], cwd=cwd)
    if check:
        assert res.returncode == 0, f"picket cert {' '.join(map(str, args))}:\n{res.stdout}\n{res.stderr}"
    return res


def load_cert(path):
    with open(path, "rb") as f:
        return pki.certs_from_pem(f.read())[0]


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def profile_of(cert):
    """What a CA profile decides, in a comparable form (serials, keys and dates left out)."""
    ext = {}
    for e in cert.extensions:
        if e.oid == ExtensionOID.BASIC_CONSTRAINTS:
            ext["bc"] = (e.critical, e.value.ca, e.value.path_length)
        elif e.oid == ExtensionOID.KEY_USAGE:
            v = e.value
            ext["ku"] = (e.critical, v.digital_signature, v.key_encipherment, v.key_cert_sign,
                         v.crl_sign)
        elif e.oid == ExtensionOID.EXTENDED_KEY_USAGE:
            ext["eku"] = (e.critical, sorted(o.dotted_string for o in e.value))
        elif e.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            ext["san"] = (e.critical, [str(n.value) for n in e.value])
        elif e.oid == ExtensionOID.SUBJECT_KEY_IDENTIFIER:
            ext["skid"] = True
        elif e.oid == ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            ext["akid"] = True
        else:
            ext[e.oid.dotted_string] = "unexpected"
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "ext": ext}


def openssl_recipe(d):
    """The guide's OpenSSL commands, verbatim but for file locations."""
    (d / "root.conf").write_text(RECIPE_CONF.format(pathlen=""))
    (d / "issuer.conf").write_text(RECIPE_CONF.format(pathlen=", pathlen:0"))
    sh("openssl ecparam -genkey -name prime256v1 | openssl ec -out root.key", d)
    sh("openssl req -new -nodes -sha256 -key root.key -out root.csr -config root.conf "
       "-extensions v3_req", d)
    sh("openssl x509 -req -sha256 -days 365 -in root.csr -signkey root.key -outform PEM "
       "-out root.pem -extfile root.conf -extensions v3_req", d)
    sh("openssl ecparam -genkey -name prime256v1 | openssl ec -out issuer.key", d)
    sh("openssl req -new -sha256 -key issuer.key -out issuer.csr -config issuer.conf "
       "-extensions v3_req", d)
    sh("openssl x509 -req -in issuer.csr -CA root.pem -CAkey root.key -CAcreateserial "
       "-outform PEM -out issuer.pem -days 365 -sha256 -extfile issuer.conf -extensions v3_req",
       d)
    return load_cert(d / "root.pem"), load_cert(d / "issuer.pem")


def create_pair(d, *flags, root_flags=(), issuer_flags=()):
    picket_cert("create-root", *flags, *root_flags, cwd=d)
    out = picket_cert("create-issuer", *flags, *issuer_flags, cwd=d).stdout
    assert "picket sentry accepts these credentials" in out
    return load_cert(d / "ca.crt"), load_cert(d / "issuer.crt")


def test_openssl_profile_equals_the_guides_openssl_recipe(tmp_path):
    ref, mine = tmp_path / "openssl", tmp_path / "picket"
    ref.mkdir()
    mine.mkdir()
    ref_root, ref_issuer = openssl_recipe(ref)
    root, issuer = create_pair(mine, "--trust-domain", "cluster.local")
    assert profile_of(root) == profile_of(ref_root)
    assert profile_of(issuer) == profile_of(ref_issuer)
    # Spelled out, so a change on both sides would still be caught.
    assert root.subject.rfc4514_string() == ("CN=cluster.local,OU=dapr.io/sentry,"
                                             "O=dapr.io/sentry,L=Daprville,ST=VA,C=US")
    assert profile_of(issuer)["ext"]["bc"] == (True, True, 0)
    assert profile_of(root)["ext"]["bc"] == (True, True, None)
    # The issuer's authority key id is the root's subject key id.
    aki = issuer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    skid = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == skid.digest
    # Cross-checks with OpenSSL: picket's issuer under picket's root, and validity one year.
    res = run(["openssl", "verify", "-CAfile", mine / "ca.crt", mine / "issuer.crt"])
    assert res.returncode == 0, res.stdout + res.stderr
    lifetime = issuer.not_valid_after - issuer.not_valid_before
    assert lifetime == datetime.timedelta(days=365)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"


def test_step_profile(tmp_path):
    """`step certificate create cluster.local ... --profile root-ca | intermediate-ca`: CN only,
    keyCertSign + cRLSign, path length 1 for the root and 0 for the issuer, no EKU or SAN."""
    root, issuer = create_pair(tmp_path, "--profile", "step", "--trust-domain", "cluster.local")
    for cert, path_len in ((root, 1), (issuer, 0)):
        p = profile_of(cert)
        assert p["subject"] == "CN=cluster.local"
        assert p["ext"]["bc"] == (True, True, path_len)
        assert p["ext"]["ku"] == (True, False, False, True, True)
        assert "eku" not in p["ext"] and "san" not in p["ext"]
        assert p["ext"]["skid"]
    assert "akid" not in profile_of(root)["ext"] and profile_of(issuer)["ext"]["akid"]
    res = run(["openssl", "verify", "-CAfile", tmp_path / "ca.crt", tmp_path / "issuer.crt"])
    assert res.returncode == 0, res.stdout + res.stderr


def test_sentry_profile_equals_what_picket_sentry_generates(tmp_path, start_sentry):
    gen = tmp_path / "generated"
    start_sentry(creds_dir=str(gen), trust_domain="cluster.local")
    made = tmp_path / "made"
    made.mkdir()
    root, issuer = create_pair(made, "--profile", "sentry", "--trust-domain", "cluster.local")
    assert profile_of(root) == profile_of(load_cert(gen / "ca.crt"))
    assert profile_of(issuer) == profile_of(load_cert(gen / "issuer.crt"))
    assert issuer.subject.rfc4514_string() == "O=spiffe://cluster.local/ns/default/dapr-sentry"
    # Like Dapr's, it starts allowedClockSkew (15m) in the past.
    start = issuer.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    assert pki.now() - start >= datetime.timedelta(minutes=14)


@pytest.mark.parametrize("profile", ["openssl", "step", "sentry"])
@pytest.mark.parametrize("key_type", ["p256", "ed25519"])
def test_picket_sentry_accepts_and_issues(tmp_path, start_sentry, profile, key_type):
    create_pair(tmp_path, "--profile", profile, "--key-type", key_type)
    before = {n: (tmp_path / n).read_bytes() for n in ("ca.crt", "issuer.crt", "issuer.key")}
    sentry = start_sentry(creds_dir=str(tmp_path), trust_domain="cluster.local")
    res = sentry.sign(app_id="web")
    assert res.status == sentry_pb.OK, res.message
    leaf_pem = res.response.workload_certificate
    (tmp_path / "leaf.pem").write_bytes(leaf_pem)
    # Sentry used the files as they are (it regenerates only when one is missing).
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    leaf = pki.certs_from_pem(leaf_pem)[0]
    assert pki.uri_sans(leaf) == ["spiffe://public/ns/default/web"]
    res = run(["openssl", "verify", "-CAfile", tmp_path / "ca.crt", "-untrusted",
               tmp_path / "issuer.crt", tmp_path / "leaf.pem"])
    assert res.returncode == 0, res.stdout + res.stderr
    key = load_key(tmp_path / "issuer.key")
    assert isinstance(key, ed25519.Ed25519PrivateKey if key_type == "ed25519"
                      else ec.EllipticCurvePrivateKey)


def test_files_modes_and_key_format(tmp_path):
    create_pair(tmp_path)
    for name, mode in (("ca.crt", 0o644), ("issuer.crt", 0o644), ("ca.key", 0o600),
                       ("issuer.key", 0o600)):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    for name in ("ca.key", "issuer.key"):
        text = (tmp_path / name).read_text()
        assert text.startswith("-----BEGIN PRIVATE KEY-----\n"), name  # PKCS#8
    # The key matches its certificate, and no temporary file was left behind.
    key = load_key(tmp_path / "issuer.key")
    pub = load_cert(tmp_path / "issuer.crt").public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert (key.public_key().public_bytes(serialization.Encoding.DER, spki) ==
            pub.public_bytes(serialization.Encoding.DER, spki))
    assert sorted(os.listdir(tmp_path)) == ["ca.crt", "ca.key", "issuer.crt", "issuer.key"]


def test_existing_files_are_never_overwritten_by_accident(tmp_path):
    picket_cert("create-root", cwd=tmp_path)
    digest = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()
              for n in ("ca.crt", "ca.key")}
    res = picket_cert("create-root", cwd=tmp_path, check=False)
    assert res.returncode == 1
    assert "ca.crt exists; pass --force" in res.stderr
    res = picket_cert("create-root", "--cert", "other.crt", cwd=tmp_path, check=False)
    assert res.returncode == 1
    assert "ca.key exists; pass --reuse-key" in res.stderr
    assert {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()
            for n in ("ca.crt", "ca.key")} == digest
    assert not (tmp_path / "other.crt").exists()
    res = picket_cert("create-root", "--reuse-key", "--key", "none.key", "--cert", "x.crt",
                      cwd=tmp_path, check=False)
    assert res.returncode == 1 and "none.key does not exist" in res.stderr


def test_same_key_rotation(tmp_path, start_sentry):
    """A new root signed with the old root key and the same subject verifies the issuer and
    the workload certificates made under the old one; a root with a new key does not."""
    old_root, _ = create_pair(tmp_path)
    sentry = start_sentry(creds_dir=str(tmp_path), trust_domain="cluster.local")
    res = sentry.sign(app_id="web")
    assert res.status == sentry_pb.OK, res.message
    (tmp_path / "leaf.pem").write_bytes(res.response.workload_certificate)
    sentry.proc.stop()

    out = picket_cert("create-root", "--reuse-key", "--cert", "ca2.crt", "--validity", "17520h",
                      cwd=tmp_path).stdout
    assert "re-used (not rewritten)" in out
    new_root = load_cert(tmp_path / "ca2.crt")
    assert new_root.subject == old_root.subject
    assert new_root.serial_number != old_root.serial_number
    assert new_root.not_valid_after > old_root.not_valid_after
    assert (new_root.public_key().public_numbers() == old_root.public_key().public_numbers())
    for target in ("issuer.crt", "leaf.pem"):
        res = run(["openssl", "verify", "-CAfile", tmp_path / "ca2.crt", "-untrusted",
                   tmp_path / "issuer.crt", tmp_path / target])
        assert res.returncode == 0, res.stdout + res.stderr
    res = picket_cert("inspect", "leaf.pem", "--ca", "ca2.crt", cwd=tmp_path, check=False)
    # leaf.pem holds the leaf and the issuer (Sentry's response), so the chain is complete.
    assert res.returncode == 0 and "chain: verified against ca2.crt" in res.stdout

    # A different key: the same name, but nothing made before verifies.
    picket_cert("create-root", "--cert", "ca3.crt", "--key", "ca3.key", cwd=tmp_path)
    res = run(["openssl", "verify", "-CAfile", tmp_path / "ca3.crt", tmp_path / "issuer.crt"])
    assert res.returncode != 0
    res = picket_cert("inspect", "leaf.pem", "--ca", "ca3.crt", cwd=tmp_path, check=False)
    assert res.returncode == 1 and "chain: FAILED against ca3.crt" in res.stdout

    # Sentry takes the rotated root with the old issuer and key.
    (tmp_path / "ca.crt").write_bytes((tmp_path / "ca2.crt").read_bytes())
    sentry = start_sentry(creds_dir=str(tmp_path), trust_domain="cluster.local", name="sentry2")
    assert sentry.sign(app_id="web").status == sentry_pb.OK


def test_reused_key_keeps_its_type(tmp_path):
    picket_cert("create-root", cwd=tmp_path)
    res = picket_cert("create-root", "--reuse-key", "--force", "--key-type", "ed25519",
                      cwd=tmp_path, check=False)
    assert res.returncode == 1
    assert "ca.key is a P-256 key, not Ed25519" in res.stderr


def test_issuer_refuses_a_wrong_signer(tmp_path):
    picket_cert("create-root", cwd=tmp_path)
    picket_cert("create-root", "--cert", "b.crt", "--key", "b.key", cwd=tmp_path)
    res = picket_cert("create-issuer", "--ca-key", "b.key", cwd=tmp_path, check=False)
    assert res.returncode == 1
    assert "b.key is not the key of the root in ca.crt" in res.stderr
    picket_cert("create-issuer", cwd=tmp_path)
    # An issuer is not a root: it cannot sign another issuer for Sentry.
    res = picket_cert("create-issuer", "--ca-cert", "issuer.crt", "--ca-key", "issuer.key",
                      "--cert", "i2.crt", "--key", "i2.key", cwd=tmp_path, check=False)
    assert res.returncode == 1 and "is not a self-signed root" in res.stderr
    assert not (tmp_path / "i2.crt").exists() and not (tmp_path / "i2.key").exists()
    # Not even --force writes an issuer over its root.
    root = (tmp_path / "ca.crt").read_bytes()
    for flags in (["--cert", "ca.crt"], ["--key", "ca.key"], ["--key", "issuer.crt"]):
        res = picket_cert("create-issuer", "--force", *flags, cwd=tmp_path, check=False)
        assert res.returncode == 2 and "must differ" in res.stderr, (flags, res.stderr)
    assert (tmp_path / "ca.crt").read_bytes() == root


def test_validity_and_bad_flags(tmp_path):
    picket_cert("create-root", "--validity", "48h", cwd=tmp_path)
    root = load_cert(tmp_path / "ca.crt")
    assert root.not_valid_after - root.not_valid_before == datetime.timedelta(hours=48)
    for flags, msg in ((["--validity", "10x"], "--validity"),
                       (["--validity", "30s"], "between 1m and 876000h"),
                       (["--key-type", "rsa"], "not ecdsa (P-256) or ed25519"),
                       (["--profile", "cfssl"], "'cfssl' is not openssl, step or sentry"),
                       (["--trust-domain", "Bad Name"], "trust domain"),
                       (["--bogus"], "unknown flag"),
                       (["stray"], "unexpected argument")):
        res = picket_cert("create-root", "--cert", "z.crt", "--key", "z.key", *flags,
                          cwd=tmp_path, check=False)
        assert res.returncode in (1, 2), flags
        assert msg in res.stderr, (flags, res.stderr)
        assert not (tmp_path / "z.key").exists()


def test_inspect_shows_each_certificate(tmp_path, start_sentry):
    create_pair(tmp_path, "--key-type", "ed25519")
    sentry = start_sentry(creds_dir=str(tmp_path), trust_domain="cluster.local")
    res = sentry.sign(app_id="web", namespace="shop")
    assert res.status == sentry_pb.OK, res.message
    (tmp_path / "chain.pem").write_bytes(res.response.workload_certificate)
    leaf, issuer = pki.certs_from_pem(res.response.workload_certificate)

    out = picket_cert("inspect", "chain.pem", "--ca", "ca.crt", cwd=tmp_path).stdout
    blocks = re.split(r"^certificate \d of 2 \(chain.pem\)\n", out, flags=re.M)
    assert len(blocks) == 3, out
    first, second = blocks[1], blocks[2]
    assert "  spiffe id:     spiffe://public/ns/shop/web\n" in first
    assert f"  serial:        {leaf.serial_number:x}\n" in first
    na = leaf.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert re.search(rf"  not after:     {na} \(expires in (\d+d \d+h|\d+h \d+m)\)\n", first)
    assert "  key:           P-256\n" in first  # the CSR's key; the issuer's is Ed25519
    assert "  ca:            no\n" in first
    assert "  ext key usage: serverAuth, clientAuth\n" in first
    fp = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert f"  sha256:        {fp}\n" in first
    assert "  key:           Ed25519\n" in second
    assert "  ca:            yes, path length 0\n" in second
    assert "  spiffe id:     (none)\n" in second
    assert f"  subject:       {'C=US'}" in second
    assert out.endswith("chain: verified against ca.crt\n")

    # Without --ca: no chain line, exit 0. The leaf alone cannot chain: exit 1.
    out = picket_cert("inspect", "chain.pem", cwd=tmp_path).stdout
    assert "chain:" not in out
    (tmp_path / "leaf.pem").write_bytes(pki.cert_pem(leaf))
    res = picket_cert("inspect", "leaf.pem", "--ca", "ca.crt", cwd=tmp_path, check=False)
    assert res.returncode == 1 and "chain: FAILED against ca.crt" in res.stdout


def test_inspect_errors_name_the_file(tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\n@@@@\n"
                                      "-----END CERTIFICATE-----\n")
    picket_cert("create-root", cwd=tmp_path)
    for args, code, msg in ((["missing.pem"], 1, "missing.pem: file does not exist"),
                            (["junk.pem"], 1, "junk.pem"),
                            (["bad.pem"], 1, "bad.pem"),
                            (["ca.crt", "--ca", "junk.pem"], 1, "junk.pem"),
                            ([], 2, "give exactly one FILE"),
                            (["a", "b"], 2, "give exactly one FILE")):
        res = picket_cert("inspect", *args, cwd=tmp_path, check=False)
        assert res.returncode == code, (args, res.stdout, res.stderr)
        assert msg in res.stderr, (args, res.stderr)


def test_default_trust_domain_is_picket_sentrys(tmp_path):
    """picket cert and picket sentry default to one trust domain (localhost, Dapr's Sentry
    default): a sentry-profile pair made with defaults names the identity a default Sentry has."""
    sentry_help = run([picket_bin(), "sentry", "--help"]).stdout
    m = re.search(r"--trust-domain\s+\S+\s+.*?\(default (\S+?)\)", sentry_help, re.S)
    assert m, sentry_help
    root, issuer = create_pair(tmp_path, "--profile", "sentry")
    assert m.group(1) == "localhost"
    assert root.subject.rfc4514_string() == f"O={m.group(1)}"
    assert f"spiffe://{m.group(1)}/ns/" in issuer.subject.rfc4514_string()
