# SPDX-License-Identifier: Apache-2.0
"""A minimal, independent gRPC unary client: python3-h2 for HTTP/2 over Python's ssl (OpenSSL).

It exists because Debian's grpcio 1.51 verifies servers by DNS name only, while a Sentry's
certificate carries just a SPIFFE URI SAN. Here the chain is verified against the given roots by
OpenSSL (no hostname check) and the caller checks the SPIFFE ID of the returned peer certificate,
which is what daprd does."""
import socket
import ssl
import struct
import urllib.parse

import h2.config
import h2.connection
import h2.events


class GrpcResult:
    def __init__(self):
        self.status = None
        self.message = ""
        self.headers = {}
        self.trailers = {}
        self.body = b""
        self.peer_cert_der = None
        self.peer_chain_der = []
        self.alpn = None
        self.tls_version = None

    @property
    def messages(self):
        """The gRPC messages in the body, unframed."""
        out, data = [], self.body
        while data:
            if len(data) < 5:
                raise ValueError("truncated gRPC frame")
            flag, length = struct.unpack(">BI", data[:5])
            if flag != 0:
                raise ValueError("compressed gRPC frame")
            out.append(data[5:5 + length])
            data = data[5 + length:]
        return out


def frame(message):
    return struct.pack(">BI", 0, len(message)) + message


def tls_context(ca_file=None, alpn=("h2",), verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=ca_file)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def call(host, port, path, request, ca_file=None, timeout=5.0, metadata=(), ctx=None,
         body=None, content_type="application/grpc"):
    """Make one unary call and return a GrpcResult. body overrides the framed request."""
    ctx = ctx or tls_context(ca_file)
    result = GrpcResult()
    raw = socket.create_connection((host, port), timeout=timeout)
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.settimeout(timeout)
        result.alpn = sock.selected_alpn_protocol()
        result.tls_version = sock.version()
        result.peer_cert_der = sock.getpeercert(binary_form=True)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "https"), (":path", path),
                   (":authority", f"{host}:{port}"), ("content-type", content_type),
                   ("te", "trailers"), ("user-agent", "picket-tests/1")]
        headers += list(metadata)
        conn.send_headers(stream, headers)
        conn.send_data(stream, body if body is not None else frame(request), end_stream=True)
        sock.sendall(conn.data_to_send())
        done = False
        while not done:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    result.headers = dict(ev.headers)
                    if "grpc-status" in result.headers:  # trailers-only response
                        result.trailers = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    result.body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    result.trailers = dict(ev.headers)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset,
                                     h2.events.ConnectionTerminated)):
                    done = True
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
    if "grpc-status" in result.trailers:
        result.status = int(result.trailers["grpc-status"])
        result.message = urllib.parse.unquote(result.trailers.get("grpc-message", ""))
    return result
