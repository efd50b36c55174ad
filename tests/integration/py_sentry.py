# SPDX-License-Identifier: Apache-2.0
"""An independent Sentry: dapr.proto.sentry.v1.CA/SignCertificate served by python3-grpcio over
TLS (grpcio negotiates ALPN h2), certificates made with python3-cryptography.

It shares no code with picket's own CA, so a picket client that works against it works against
something other than itself. It issues Dapr 1.14+ workload certificates (SENTRY-PROTOCOL.md §4)
from a root and issuer it generates in memory (P-256, or Ed25519), and can be told, while it
runs, to misbehave in the ways a client must notice (`mode`).

As a module (what the tests use; see the `py_sentry` fixture in conftest.py):

    s = PySentry(ttl=5, key_type="p256")   # root, issuer and server cert made here
    s.start()                              # s.address == "127.0.0.1:PORT"
    s.write_ca(path)                       # the trust bundle (root PEM)
    s.mode = "expired"                     # any time, from any thread
    s.requests[-1].csr_public_key          # what was asked for
    s.stop(); s.start()                    # gone, then back on the same port
    s.close()

As a script (manual use): python3 tests/integration/py_sentry.py --port 50001 --ca-out ca.crt
"""
import argparse
import dataclasses
import datetime
import os
import sys
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

import sentry_pb  # noqa: E402

SERVICE = "dapr.proto.sentry.v1.CA"
MODES = ("normal", "wrong_id", "foreign_root", "two_sans", "expired", "unavailable", "garbage")
KEY_TYPES = ("p256", "ed25519")
UTC = datetime.timezone.utc
GARBAGE = b"this is not a PEM certificate\n"


def _new_key(key_type):
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key_type must be one of {KEY_TYPES}, not {key_type!r}")


def _hash_for(key):
    """The signature hash for a signing key: none for Ed25519 (PureEd25519), else SHA-256."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _serial():
    """Uniform in [1, 2^128), as Dapr (zero is not a valid serial)."""
    while True:
        n = int.from_bytes(os.urandom(16), "big")
        if n:
            return n


def _now():
    return datetime.datetime.now(UTC).replace(microsecond=0)


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


class _CA:
    """A self-signed root and an issuer under it, both of key_type, valid for a year."""

    def __init__(self, key_type, trust_domain, namespace, label=""):
        nb = _now() - datetime.timedelta(minutes=15)
        na = nb + datetime.timedelta(days=365)
        self.root_key = _new_key(key_type)
        root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                  trust_domain + label)])
        self.root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
                     .public_key(self.root_key.public_key()).serial_number(_serial())
                     .not_valid_before(nb).not_valid_after(na)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                  False, False), True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.root_key.public_key()), False)
                     .sign(self.root_key, _hash_for(self.root_key)))
        self.issuer_key = _new_key(key_type)
        issuer_name = x509.Name([x509.NameAttribute(
            NameOID.ORGANIZATION_NAME, f"spiffe://{trust_domain}/ns/{namespace}/dapr-sentry{label}")])
        self.issuer = (x509.CertificateBuilder().subject_name(issuer_name)
                       .issuer_name(root_name).public_key(self.issuer_key.public_key())
                       .serial_number(_serial()).not_valid_before(nb).not_valid_after(na)
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                       .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                    False, False), True)
                       .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                           self.issuer_key.public_key()), False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                           self.root_key.public_key()), False)
                       .sign(self.root_key, _hash_for(self.root_key)))
        self.root_pem = _pem(self.root)
        self.issuer_pem = _pem(self.issuer)

    def workload(self, public_key, uris, not_before, not_after, dns_names=()):
        """A leaf in Dapr's 1.14+ profile (§4): empty subject, critical SAN (the URIs given,
        normally exactly one), critical KU digitalSignature, EKU serverAuth + clientAuth, no
        BasicConstraints, AKI = the issuer's SKI, random 128-bit serial."""
        names = [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.DNSName(d) for d in dns_names]
        ski = self.issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (x509.CertificateBuilder().subject_name(x509.Name([]))
                .issuer_name(self.issuer.subject).public_key(public_key)
                .serial_number(_serial()).not_valid_before(not_before)
                .not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName(names), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    ski), False)
                .sign(self.issuer_key, _hash_for(self.issuer_key)))


@dataclasses.dataclass(frozen=True)
class Request:
    """One SignCertificate call as received (whatever the mode answered)."""
    id: str
    namespace: str
    trust_domain: str
    token: str
    token_validator: int
    csr_public_key: bytes  # DER SubjectPublicKeyInfo of the CSR's key; b"" if it did not parse
    csr_pem: bytes
    metadata: tuple        # ((key, value), ...) as grpcio gives them, e.g. x-retry-attempty
    mode: str              # the mode in force when it was answered
    time: float            # time.time() on arrival


class PySentry:
    """A SignCertificate server on grpcio. Every public attribute may be read or set from any
    thread while it serves; each call uses the values in force when it arrives.

    Settable: ttl (seconds), skew (seconds), mode (one of MODES), delay (seconds to wait before
    answering), wrong_app_id (the identity `wrong_id` hands out).
    Read-only: key_type, trust_domain, namespace, host, port, address, ca_pem, ca_file,
    server_id, requests (a copy), issued (the leaf certificates returned, a copy).
    """

    def __init__(self, ttl=5, skew=0, key_type="p256", trust_domain="localhost",
                 namespace="default", mode="normal", host="127.0.0.1", port=0, delay=0.0,
                 server_dns_names=(), max_workers=4):
        if key_type not in KEY_TYPES:
            raise ValueError(f"key_type must be one of {KEY_TYPES}, not {key_type!r}")
        self._lock = threading.Lock()
        self._ttl = ttl
        self._skew = skew
        self._mode = None
        self.mode = mode
        self._delay = delay
        self._wrong_app_id = "intruder"
        self._requests = []
        self._issued = []
        self._server = None
        self.key_type = key_type
        self.trust_domain = trust_domain
        self.namespace = namespace
        self.host = host
        self.port = port
        self.max_workers = max_workers
        self.ca_file = None
        self._pb = sentry_pb.load()
        self._ca = _CA(key_type, trust_domain, namespace)
        # Made only when first asked for (Ed25519 and P-256 keys are cheap, but why bother).
        self._foreign = None
        self.server_id = f"spiffe://{trust_domain}/ns/{namespace}/dapr-sentry"
        nb = _now() - datetime.timedelta(minutes=15)
        server_key = _new_key(key_type)
        server_cert = self._ca.workload(server_key.public_key(), [self.server_id], nb,
                                        nb + datetime.timedelta(days=30),
                                        dns_names=server_dns_names)
        self._server_key_pem = server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        self._server_chain_pem = _pem(server_cert) + self._ca.issuer_pem
        self.server_cert = server_cert

    # --- settings, guarded so a test thread can change them while calls are served ---------

    def _locked_property(name, check=None):  # noqa: N805 (a class-body helper)
        def get(self):
            with self._lock:
                return getattr(self, name)

        def set_(self, value):
            if check is not None:
                check(value)
            with self._lock:
                setattr(self, name, value)
        return property(get, set_)

    def _check_mode(value):  # noqa: N805
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")

    ttl = _locked_property("_ttl")
    skew = _locked_property("_skew")
    mode = _locked_property("_mode", _check_mode)
    delay = _locked_property("_delay")
    wrong_app_id = _locked_property("_wrong_app_id")
    del _locked_property, _check_mode

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    @property
    def issued(self):
        with self._lock:
            return list(self._issued)

    def clear_requests(self):
        with self._lock:
            self._requests.clear()
            self._issued.clear()

    def wait_requests(self, n, timeout=5.0):
        """Wait until at least n requests have arrived; returns them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.requests
            if len(reqs) >= n:
                return reqs
            if time.monotonic() > deadline:
                raise TimeoutError(f"py_sentry: {len(reqs)} requests after {timeout}s, "
                                   f"wanted {n}")
            time.sleep(0.01)

    # --- trust bundle ---------------------------------------------------------------------

    @property
    def ca_pem(self):
        """The trust bundle (the root, PEM bytes): what clients must trust."""
        return self._ca.root_pem

    @property
    def issuer_pem(self):
        return self._ca.issuer_pem

    def write_ca(self, path):
        """Write the trust bundle to path; returns path (and remembers it as ca_file)."""
        with open(path, "wb") as f:
            f.write(self.ca_pem)
        self.ca_file = str(path)
        return self.ca_file

    # --- serving --------------------------------------------------------------------------

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    @property
    def running(self):
        with self._lock:
            return self._server is not None

    def start(self):
        """Listen (again) on host:port; the first start picks a free port if port is 0."""
        with self._lock:
            if self._server is not None:
                return self
        pb = self._pb
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "SignCertificate": grpc.unary_unary_rpc_method_handler(
                self._sign, request_deserializer=pb.SignCertificateRequest.FromString,
                response_serializer=pb.SignCertificateResponse.SerializeToString),
        })
        # No SO_REUSEPORT: a restart must not share the port with anyone else.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers),
                             handlers=(handler,), options=(("grpc.so_reuseport", 0),))
        creds = grpc.ssl_server_credentials([(self._server_key_pem, self._server_chain_pem)])
        deadline = time.monotonic() + 5.0
        while True:
            try:
                port = server.add_secure_port(f"{self.host}:{self.port}", creds)
            except RuntimeError:  # grpcio >= 1.5x raises instead of returning 0
                port = 0
            if port:
                break
            if self.port == 0 or time.monotonic() > deadline:
                server.stop(None)
                raise RuntimeError(f"py_sentry: cannot listen on {self.host}:{self.port}")
            time.sleep(0.05)  # the previous listener on this port is still going away
        server.start()
        with self._lock:
            self.port = port
            self._server = server
        return self

    def stop(self, grace=None):
        """Stop listening and drop every connection (the port is kept for start())."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait(10)

    close = stop

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- the RPC --------------------------------------------------------------------------

    def _sign(self, req, context):
        arrived = time.time()
        with self._lock:
            ttl, skew, mode, delay = self._ttl, self._skew, self._mode, self._delay
            wrong_app_id = self._wrong_app_id
        csr = None
        spki = b""
        try:
            csr = x509.load_pem_x509_csr(bytes(req.certificate_signing_request))
            spki = _spki(csr.public_key())
        except (ValueError, TypeError):
            csr = None
        record = Request(id=req.id, namespace=req.namespace, trust_domain=req.trust_domain,
                         token=req.token, token_validator=req.token_validator,
                         csr_public_key=spki, csr_pem=bytes(req.certificate_signing_request),
                         metadata=tuple(context.invocation_metadata() or ()), mode=mode,
                         time=arrived)
        with self._lock:
            self._requests.append(record)
        if delay:
            time.sleep(delay)
        if mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "py_sentry: unavailable (test mode)")
        # The INSECURE validator's checks and Dapr's codes (§4), briefly.
        if not req.id:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "invalid request: parameter app-id cannot be empty")
        if not req.namespace:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "invalid request: namespace is required")
        if csr is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "invalid certificate signing request")
        if not csr.is_signature_valid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid signature")

        td = req.trust_domain or "public"
        app_id = wrong_app_id if mode == "wrong_id" else req.id
        uris = [f"spiffe://{td}/ns/{req.namespace}/{app_id}"]
        if mode == "two_sans":
            uris.append(f"spiffe://{td}/ns/{req.namespace}/{wrong_app_id}")
        now = _now()
        if mode == "expired":
            not_before = now - datetime.timedelta(hours=2)
            not_after = now - datetime.timedelta(hours=1)
        else:
            not_before = now - datetime.timedelta(seconds=skew)
            not_after = now + datetime.timedelta(seconds=ttl)
        ca = self._ca
        if mode == "foreign_root":
            with self._lock:
                if self._foreign is None:
                    self._foreign = _CA(self.key_type, self.trust_domain, self.namespace,
                                        label=" (foreign)")
                ca = self._foreign
        leaf = ca.workload(csr.public_key(), uris, not_before, not_after)
        with self._lock:
            self._issued.append(leaf)
        pb = self._pb
        res = pb.SignCertificateResponse()
        if mode == "garbage":
            res.workload_certificate = GARBAGE
        else:
            res.workload_certificate = _pem(leaf) + ca.issuer_pem
        # foreign_root: the response names its own (foreign) root, consistently; a client must
        # verify against the anchors it was configured with, not what the response brings.
        res.trust_chain_certificates.append(ca.root_pem)
        res.valid_until.seconds = int(not_after.timestamp())
        return res


def main(argv=None):
    p = argparse.ArgumentParser(
        description="An independent Dapr Sentry (grpcio + python3-cryptography) for testing.",
        usage="%(prog)s [--port N] [--host H] [--ttl S] [--skew S] [--key-type p256|ed25519] "
              "[--trust-domain TD] [--namespace NS] [--mode MODE] [--ca-out FILE]")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50001)
    p.add_argument("--ttl", type=float, default=3600)
    p.add_argument("--skew", type=float, default=0)
    p.add_argument("--key-type", choices=KEY_TYPES, default="p256")
    p.add_argument("--trust-domain", default="localhost")
    p.add_argument("--namespace", default="default")
    p.add_argument("--mode", choices=MODES, default="normal")
    p.add_argument("--ca-out", default="ca.crt", help="where to write the trust bundle")
    a = p.parse_args(argv)
    s = PySentry(ttl=a.ttl, skew=a.skew, key_type=a.key_type, trust_domain=a.trust_domain,
                 namespace=a.namespace, mode=a.mode, host=a.host, port=a.port)
    s.write_ca(a.ca_out)
    s.start()
    print(f"py_sentry serving {s.server_id} on {s.address}; trust bundle in {a.ca_out}",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        s.stop()
        print(f"py_sentry: {len(s.requests)} requests served", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
