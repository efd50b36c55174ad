# SPDX-License-Identifier: Apache-2.0
"""`picket sentry --mode kubernetes` against a hostile or broken Kubernetes API server: a
Python TLS server that answers the way an attacker or a failing cluster would. picket sentry
must stop at start-up with an error naming what went wrong (it cannot serve without the
dapr-trust-bundle Secret), never send its token to a server it has not verified, never block on
a server that does not answer, and never buffer an answer without bound. The happy paths run
against Dapr's own fake API server in tests/interop."""
import json
import socket
import ssl
import threading

import pytest

import pki
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from harness import Proc, free_port, picket_bin

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLXRleHQ.c2ln"


def rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def server_cert(root, root_key, dns, key=None):
    key = key or pki.new_key()
    nb = pki.now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(root.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb - pki.datetime.timedelta(minutes=5))
            .not_valid_after(nb + pki.datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
            .sign(root_key, pki.sig_hash(root_key)))
    return cert, key


class FakeAPI:
    """A TLS server; answer(method, path, headers, body) returns the raw bytes to send, or None to
    say nothing and keep the connection open."""

    def __init__(self, tmp_path, dns, answer, rsa=False):
        # A cluster's CA is usually RSA (kubeadm, most managed clusters).
        root, root_key = pki.make_root("kube-ca", key=rsa_key() if rsa else None)
        cert, key = server_cert(root, root_key, dns, key=rsa_key() if rsa else None)
        self.ca_file = tmp_path / "kube-ca.crt"
        self.ca_file.write_bytes(pki.cert_pem(root))
        (tmp_path / "srv.crt").write_bytes(pki.cert_pem(cert))
        (tmp_path / "srv.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
        self.answer = answer
        self.requests = []
        self.handshakes_failed = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.open = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_failed += 1
            conn.close()
            return
        self.open.append(tls)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ")
            headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
            while len(body) < int(headers.get("content-length", "0")):
                body += tls.recv(65536)
            self.requests.append((method, path, headers, body))
            out = self.answer(method, path, headers, body)
            if out is not None:
                tls.sendall(out)
                tls.close()
        except (ssl.SSLError, OSError):
            pass

    def close(self):
        self.sock.close()
        for s in self.open:
            try:
                s.close()
            except OSError:
                pass


def json_answer(status, obj, reason="OK"):
    body = json.dumps(obj).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def start_kube_sentry(tmp_path, api, server_name="api.test"):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    args = [picket_bin(), "sentry", "--mode", "kubernetes", "--trust-domain", "cluster.local",
            "--kube-ca-file", api.ca_file, "--kube-token-file", token,
            "--kube-tls-server-name", server_name,
            "--port", free_port(), "--listen-address", "127.0.0.1",
            "--healthz-port", free_port(), "--healthz-listen-address", "127.0.0.1",
            "--metrics-port", free_port(), "--metrics-listen-address", "127.0.0.1"]
    return Proc(args, tmp_path / "sentry.log",
                env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                     "KUBERNETES_SERVICE_PORT": api.port, "NAMESPACE": "dapr-system"})


@pytest.fixture
def fake_api(tmp_path):
    made = []

    def make(answer, dns="api.test", rsa=False):
        api = FakeAPI(tmp_path, dns, answer, rsa)
        made.append(api)
        return api
    yield make
    for api in made:
        api.close()


def test_server_with_another_name_gets_no_token(tmp_path, fake_api):
    """The API server's certificate names another host: the handshake fails, no request (and so
    no bearer token) is ever sent, and start-up stops naming TLS and the server."""
    api = fake_api(lambda *a: json_answer(200, {}), dns="evil.test")
    proc = start_kube_sentry(tmp_path, api)
    assert proc.wait_exit(30) != 0
    out = proc.output()
    assert "127.0.0.1:%d" % api.port in out and "TLS" in out, out
    assert api.requests == []
    assert TOKEN not in out


def test_silent_server_times_out(tmp_path, fake_api):
    """A server that accepts and never answers: the request's deadline ends start-up with a
    message saying so, instead of hanging."""
    api = fake_api(lambda *a: None)
    proc = start_kube_sentry(tmp_path, api)
    assert proc.wait_exit(40) != 0
    out = proc.output()
    assert "no answer from the Kubernetes API server" in out and "within 10.0s" in out, out
    # The one request carried the service account token, re-read from its file.
    (method, path, headers, _), = api.requests
    assert (method, path) == ("GET", "/api/v1/namespaces/dapr-system/secrets/dapr-trust-bundle")
    assert headers["authorization"] == "Bearer " + TOKEN
    assert TOKEN not in out


def test_huge_answer_refused_without_buffering(tmp_path, fake_api):
    """An answer announcing 64 MiB is refused from its head, before any body byte arrives."""
    api = fake_api(lambda *a: b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n{")
    proc = start_kube_sentry(tmp_path, api)
    assert proc.wait_exit(30) != 0
    out = proc.output()
    assert "Content-Length 67108864 above the limit" in out, out


@pytest.mark.parametrize("rsa", [False, True], ids=["p256", "rsa"])
def test_forbidden_secret_names_the_object_and_the_reason(tmp_path, fake_api, rsa):
    """RBAC missing: the API server's 403 Status is reported with the object and its message
    (over TLS with a P-256 and with an RSA cluster CA)."""
    api = fake_api(rsa=rsa, answer=lambda *a: json_answer(403, {
        "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "secrets \"dapr-trust-bundle\" is forbidden: User \"system:serviceaccount:"
                   "dapr-system:default\" cannot get resource \"secrets\""}, "Forbidden"))
    proc = start_kube_sentry(tmp_path, api)
    assert proc.wait_exit(30) != 0
    out = proc.output()
    assert "GET /api/v1/namespaces/dapr-system/secrets/dapr-trust-bundle: HTTP 403" in out, out
    assert "cannot get resource" in out


def test_secret_with_bad_base64_is_refused(tmp_path, fake_api):
    """A Secret whose data is not base64 stops start-up naming the Secret and the key; nothing is
    generated over it."""
    def answer(method, path, headers, body):
        if path.endswith("/secrets/dapr-trust-bundle"):
            return json_answer(200, {"kind": "Secret", "metadata": {"name": "dapr-trust-bundle"},
                                     "data": {"ca.crt": "not*base64", "issuer.crt": "",
                                              "issuer.key": ""}})
        return json_answer(200, {"kind": "ConfigMap", "data": {}})
    api = fake_api(answer)
    proc = start_kube_sentry(tmp_path, api)
    assert proc.wait_exit(30) != 0
    out = proc.output()
    assert "Secret dapr-system/dapr-trust-bundle: Secret: data `ca.crt' is not valid base64" in out, out
    assert [m for m, *_ in api.requests] == ["GET"]


def test_no_api_server_configured(tmp_path):
    proc = Proc([picket_bin(), "sentry", "--mode", "kubernetes"], tmp_path / "sentry.log",
                env={"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""})
    assert proc.wait_exit(20) == 1
    assert "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set" in proc.output()


def test_bad_mode_refused(tmp_path):
    proc = Proc([picket_bin(), "sentry", "--mode", "cluster"], tmp_path / "sentry.log")
    assert proc.wait_exit(20) == 2
    assert "--mode: `cluster' is not standalone or kubernetes" in proc.output()
