# SPDX-License-Identifier: Apache-2.0
"""A TLS 1.3 ClientHello built byte by byte (no TLS library), to send what a real client never
would: key shares off the curve, a ChangeCipherSpec before the hello, a second ClientHello after
a HelloRetryRequest. The server's answer is read as records."""
import os
import socket
import struct
import time

HANDSHAKE, CCS, ALERT = 22, 20, 21
SECP256R1, X25519 = 0x0017, 0x001D
P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
# The HelloRetryRequest "random" (RFC 8446 §4.1.3).
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


def _vec(data, size):
    return len(data).to_bytes(size, "big") + data


def _ext(kind, body):
    return struct.pack(">HH", kind, len(body)) + body


def client_hello(shares, groups=(SECP256R1, X25519), cookie=None, session_id=None, random=None):
    """The ClientHello handshake message. shares: [(group, key bytes)]."""
    exts = _ext(43, _vec(b"\x03\x04", 1))  # supported_versions: TLS 1.3
    exts += _ext(10, _vec(b"".join(struct.pack(">H", g) for g in groups), 2))
    exts += _ext(13, _vec(bytes.fromhex("0403080708040503"), 2))  # signature_algorithms
    exts += _ext(51, _vec(b"".join(struct.pack(">H", g) + _vec(k, 2) for g, k in shares), 2))
    if cookie is not None:
        exts += _ext(44, _vec(cookie, 2))
    body = b"\x03\x03" + (random or os.urandom(32)) + _vec(session_id or os.urandom(32), 1)
    body += _vec(bytes.fromhex("130113021303"), 2) + _vec(b"\x00", 1) + _vec(exts, 2)
    return bytes([1]) + len(body).to_bytes(3, "big") + body


def records(kind, payload, size=16384, version=0x0303):
    """payload cut into records of at most size bytes (a first ClientHello may say 0x0301)."""
    out = b""
    for i in range(0, len(payload), size):
        chunk = payload[i:i + size]
        out += struct.pack(">BHH", kind, version, len(chunk)) + chunk
    return out


def p256_point(x, y):
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def valid_p256_share():
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def read_records(sock, timeout=5.0, stop=None):
    """Records the server sends until it closes, timeout passes, or stop(records) is true:
    [(type, payload)]."""
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 5:
            kind, _, length = struct.unpack(">BHH", buf[:5])
            if len(buf) < 5 + length:
                break
            out.append((kind, buf[5:5 + length]))
            buf = buf[5 + length:]
        if stop and stop(out):
            break
    return out


def exchange(port, chunks, timeout=5.0, stop=None):
    """Send each chunk (a short pause between them) and collect the server's records."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        for c in chunks:
            try:
                s.sendall(c)
            except OSError:
                break  # the server has already closed: read what it answered
            time.sleep(0.02)
        return read_records(s, timeout, stop)
    finally:
        s.close()


def alerts(recs):
    return [p[1] for k, p in recs if k == ALERT and len(p) == 2]


def server_hellos(recs):
    return [p for k, p in recs if k == HANDSHAKE]


def hrr_cookie(payload):
    """The cookie of a HelloRetryRequest (ServerHello handshake message), or None; raises if the
    message is not an HRR."""
    assert payload[0] == 2, payload[:4]
    body = payload[4:]
    assert body[2:34] == HRR_RANDOM, "not a HelloRetryRequest"
    i = 34
    i += 1 + body[i]  # legacy_session_id_echo
    i += 3            # cipher suite, compression
    end = i + 2 + int.from_bytes(body[i:i + 2], "big")
    i += 2
    while i < end:
        kind, length = struct.unpack(">HH", body[i:i + 4])
        if kind == 44:
            return body[i + 6:i + 4 + length]
        i += 4 + length
    return None


def server_hello(session_id, share=None, selected_group=None, random=None):
    """A TLS 1.3 ServerHello handshake message choosing TLS_AES_128_GCM_SHA256: with share
    (group, key), or, with selected_group, a HelloRetryRequest asking for that group."""
    exts = _ext(43, b"\x03\x04")
    if selected_group is not None:
        exts += _ext(51, struct.pack(">H", selected_group))
        random = HRR_RANDOM
    else:
        exts += _ext(51, struct.pack(">H", share[0]) + _vec(share[1], 2))
    body = b"\x03\x03" + (random or os.urandom(32)) + _vec(session_id, 1) + b"\x13\x01\x00"
    body += _vec(exts, 2)
    return bytes([2]) + len(body).to_bytes(3, "big") + body


def client_hello_session_id(payload):
    """The legacy_session_id of a ClientHello handshake message."""
    assert payload[0] == 1, payload[:4]
    n = payload[4 + 34]
    return payload[4 + 35:4 + 35 + n]
