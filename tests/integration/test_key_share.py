# SPDX-License-Identifier: Apache-2.0
"""Both TLS servers of picket (the proxy's inbound listener and picket sentry's gRPC port) refuse
an invalid key share with illegal_parameter and a ChangeCipherSpec before the ClientHello with
unexpected_message, before sending any server flight (RFC 8446 §4.2.8.2, §5). The ClientHellos
are built byte by byte in rawtls.py."""
import os

import pytest

import rawtls
from rawtls import SECP256R1, X25519, alerts, client_hello, exchange, records, server_hellos
from test_proxy import Recorder, inbound, pki_env, sidecar  # noqa: F401

ILLEGAL_PARAMETER, UNEXPECTED_MESSAGE = 47, 10

# X25519 u-coordinates of order 8 (RFC 7748 §6.1: they give the all-zero shared secret).
X25519_ORDER8 = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


@pytest.fixture(params=["proxy", "sentry"])
def server_port(request, pki_env, start_agent):
    """The port of one of picket's TLS servers."""
    if request.param == "sentry":
        return pki_env.sentry.port
    port, listeners = inbound(Recorder().port)
    sidecar(start_agent, pki_env, "backend", listeners)
    return port


def hello_record(shares, **kw):
    return records(rawtls.HANDSHAKE, client_hello(shares, **kw))


def answered_with_server_hello(recs):
    return bool(server_hellos(recs)) and not alerts(recs)


OFF_CURVE = {
    "random point": b"\x04" + os.urandom(64),
    "(0,0)": rawtls.p256_point(0, 0),
    "x = p": rawtls.p256_point(rawtls.P256_P, 1),
    "y = p": rawtls.p256_point(1, rawtls.P256_P),
    "compressed": b"\x02" + os.urandom(32),
    "short": b"\x04" + os.urandom(10),
}


@pytest.mark.parametrize("case", sorted(OFF_CURVE))
def test_an_off_curve_p256_share_is_refused_before_any_server_flight(server_port, case):
    recs = exchange(server_port, [hello_record([(SECP256R1, OFF_CURVE[case])])])
    assert alerts(recs) == [ILLEGAL_PARAMETER], recs
    assert server_hellos(recs) == [], recs


def test_a_valid_p256_share_gets_a_server_hello(server_port):
    recs = exchange(server_port, [hello_record([(SECP256R1, rawtls.valid_p256_share())])],
                    stop=server_hellos)
    assert answered_with_server_hello(recs), recs


def test_a_bad_share_in_a_hello_split_across_records_and_reads(server_port):
    """The ClientHello cut into 40-byte records, sent 7 bytes at a time; the bad share comes
    after a good X25519 one."""
    hello = client_hello([(X25519, os.urandom(32)), (SECP256R1, rawtls.p256_point(0, 0))])
    wire = records(rawtls.HANDSHAKE, hello, size=40)
    recs = exchange(server_port, [wire[i:i + 7] for i in range(0, len(wire), 7)])
    assert alerts(recs) == [ILLEGAL_PARAMETER], recs
    assert server_hellos(recs) == [], recs


def test_change_cipher_spec_before_the_client_hello_is_refused(server_port):
    ccs = records(rawtls.CCS, b"\x01")
    recs = exchange(server_port, [ccs, hello_record([(SECP256R1, rawtls.valid_p256_share())])])
    assert alerts(recs) == [UNEXPECTED_MESSAGE], recs
    assert server_hellos(recs) == [], recs


def test_an_x25519_share_of_small_order_is_refused(server_port):
    recs = exchange(server_port, [hello_record([(X25519, X25519_ORDER8)])])
    assert alerts(recs) == [ILLEGAL_PARAMETER], recs
    assert server_hellos(recs) == [], recs
    recs = exchange(server_port, [hello_record([(X25519, os.urandom(32)[:31] + b"\x10")])],
                    stop=server_hellos)
    assert answered_with_server_hello(recs), recs


@pytest.mark.parametrize("second", ["off curve", "valid"])
def test_the_second_client_hello_after_a_hello_retry_request(server_port, second):
    """No share at first: the server asks for a P-256 one (HelloRetryRequest); the second
    ClientHello's share is checked as well."""
    import socket
    random, sid = os.urandom(32), os.urandom(32)
    s = socket.create_connection(("127.0.0.1", server_port), timeout=5)
    try:
        s.sendall(records(rawtls.HANDSHAKE, client_hello([], groups=(SECP256R1,), random=random,
                                                          session_id=sid)))
        recs = rawtls.read_records(s, stop=server_hellos)
        assert len(server_hellos(recs)) == 1 and not alerts(recs), recs
        cookie = rawtls.hrr_cookie(server_hellos(recs)[0])
        share = rawtls.p256_point(0, 0) if second == "off curve" else rawtls.valid_p256_share()
        s.sendall(records(rawtls.CCS, b"\x01") + records(
            rawtls.HANDSHAKE, client_hello([(SECP256R1, share)], groups=(SECP256R1,),
                                           cookie=cookie, random=random, session_id=sid)))
        more = rawtls.read_records(s, stop=server_hellos)
    finally:
        s.close()
    if second == "off curve":
        assert alerts(more) == [ILLEGAL_PARAMETER], more
        assert server_hellos(more) == [], more
    else:
        assert answered_with_server_hello(more), more


# ---- the client side: a hostile server's key share (outbound listeners) ----

class RawServer:
    """A TCP server speaking just enough TLS 1.3 to send a chosen ServerHello: for each
    connection, answer(sock, first ClientHello records) runs, then every record the client
    sends back is kept in self.got."""

    def __init__(self, answer):
        import socket
        import threading
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.got = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                hello = rawtls.read_records(c, stop=server_hellos)
                if server_hellos(hello):
                    self.answer(c, server_hellos(hello)[0])
                    self.got.extend(rawtls.read_records(c, timeout=5, stop=alerts))

    def close(self):
        self.sock.close()


def answer_x25519_small_order(c, ch):
    sid = rawtls.client_hello_session_id(ch)
    c.sendall(records(rawtls.HANDSHAKE, rawtls.server_hello(sid, share=(X25519, X25519_ORDER8))))


def answer_p256_off_curve(c, ch):
    """Ask for a P-256 share (HelloRetryRequest), then answer it with (0,0)."""
    sid = rawtls.client_hello_session_id(ch)
    c.sendall(records(rawtls.HANDSHAKE, rawtls.server_hello(sid, selected_group=SECP256R1)))
    second = rawtls.read_records(c, stop=server_hellos)
    assert server_hellos(second), second
    c.sendall(records(rawtls.HANDSHAKE,
                      rawtls.server_hello(sid, share=(SECP256R1, rawtls.p256_point(0, 0)))))


def answer_early_ccs(c, ch):
    sid = rawtls.client_hello_session_id(ch)
    c.sendall(records(rawtls.CCS, b"\x01") + records(
        rawtls.HANDSHAKE, rawtls.server_hello(sid, share=(X25519, os.urandom(31) + b"\x10"))))


@pytest.mark.parametrize("answer,alert", [
    (answer_x25519_small_order, ILLEGAL_PARAMETER),
    (answer_p256_off_curve, ILLEGAL_PARAMETER),
    (answer_early_ccs, UNEXPECTED_MESSAGE),
], ids=["x25519 small order", "p256 off curve after HRR", "early CCS"])
def test_outbound_refuses_a_bad_server_hello(pki_env, start_agent, answer, alert):
    import socket
    from harness import free_port, wait_for
    server = RawServer(answer)
    port = free_port()
    sidecar(start_agent, pki_env, "frontend",
            {"outbound backend": {"listen": f"127.0.0.1:{port}",
                                  "target": f"127.0.0.1:{server.port}",
                                  "expect_app_id": "backend"}})
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"ping")
    try:
        assert c.recv(100) == b""
    except ConnectionResetError:
        pass
    c.close()
    wait_for(lambda: alerts(server.got), 10, what="the client's alert")
    assert alerts(server.got) == [alert], server.got
    assert [k for k, _ in server.got if k != rawtls.ALERT] == [], server.got
    server.close()
