#!/usr/bin/env python3
"""A stand-in for kube-apiserver's client-certificate authentication, for the integration tests.

Python 3 standard library only. It serves HTTPS on 127.0.0.1 with the given certificate and key,
requires a client certificate that chains to the given CA file (and trusts nothing else: no
system store), and answers the requests `kubectl auth whoami` makes (kubectl 1.32, found by
experiment):

  GET  /version                        kubectl's version dispatcher asks it first, before any
                                       command, to pick the kubectl build that matches the server
  POST /apis/authentication.k8s.io/v1/selfsubjectreviews
                                       the caller's identity, read from its certificate the way
                                       kube-apiserver's x509 authenticator reads it: username =
                                       the CN, groups = every O in order, then
                                       system:authenticated. The body comes as JSON or in
                                       Kubernetes' protobuf envelope (kubectl sends protobuf);
                                       the answer is JSON, which kubectl also accepts.
  POST .../v1beta1/selfsubjectreviews  the same (kubectl falls back to v1beta1, then v1alpha1,
                                       when v1 answers 404)

Anything else gets a Kubernetes `Status` 404. The first line on stdout is the port it listens on
(`--port 0` picks a free one); requests, identities and refused handshakes are logged to stderr.
It exits when its stdin closes, or on SIGTERM or SIGINT.

Usage: apiserver.py --cert apiserver.crt --key apiserver.key --client-ca ca.crt [--port 0]
"""

import argparse
import json
import os
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GIT_VERSION = "v1.32.4"
# SelfSubjectReview is served as v1 (GA since 1.28) and v1beta1, as kube-apiserver 1.32 serves it.
# kubectl tries v1 first and falls back to v1beta1, then v1alpha1, only on 404.
REVIEW_PATHS = {
    "/apis/authentication.k8s.io/%s/selfsubjectreviews" % v: "authentication.k8s.io/" + v
    for v in ("v1", "v1beta1")
}


def log(msg):
    sys.stderr.write("apiserver: " + msg + "\n")
    sys.stderr.flush()


def identity(peercert):
    """(user, groups) of a verified client certificate, as kube-apiserver derives them."""
    user = ""
    groups = []
    # `subject` lists every relative distinguished name in certificate order, each a tuple of
    # (attribute, value) pairs, so a subject with several O values yields all of them.
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                user = value
            elif attr == "organizationName":
                groups.append(value)
    return user, groups


PROTOBUF_MAGIC = b"k8s\x00"


def varint(buf, i):
    """Decodes the protobuf varint at buf[i:]; returns (value, next index)."""
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def proto_fields(buf):
    """The length-delimited fields of a protobuf message, as {field number: bytes}."""
    out = {}
    i = 0
    while i < len(buf):
        tag, i = varint(buf, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            out.setdefault(number, buf[i : i + n])
            i += n
        else:
            raise ValueError("unsupported wire type %d" % wire)
    return out


def type_meta(content_type, body):
    """(apiVersion, kind) of a request body in JSON or in Kubernetes' protobuf envelope
    (runtime.Unknown: field 1 TypeMeta {1 apiVersion, 2 kind}, field 2 the raw object)."""
    if content_type.startswith("application/vnd.kubernetes.protobuf"):
        if not body.startswith(PROTOBUF_MAGIC):
            raise ValueError("protobuf body without the k8s magic prefix")
        meta = proto_fields(proto_fields(body[len(PROTOBUF_MAGIC) :]).get(1, b""))
        return meta.get(1, b"").decode(), meta.get(2, b"").decode()
    if content_type.startswith("application/json") or not content_type:
        obj = json.loads(body or b"{}")
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj.get("apiVersion", ""), obj.get("kind", "")
    raise ValueError("unsupported content type %r" % content_type)


def status(code, reason, message):
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "test-apiserver"

    def log_message(self, fmt, *args):
        user, _ = identity(self.connection.getpeercert() or {})
        log("%s (%s) %s" % (self.address_string(), user, fmt % args))

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def path_only(self):
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def not_found(self):
        self.send_json(
            404, status(404, "NotFound", "the server could not find the requested resource")
        )

    def do_GET(self):
        path = self.path_only()
        if path == "/version":
            self.send_json(
                200,
                {
                    "major": "1",
                    "minor": "32",
                    "gitVersion": GIT_VERSION,
                    "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean",
                    "buildDate": "2025-01-01T00:00:00Z",
                    "goVersion": "go1.23.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
            )
        else:
            self.not_found()

    def do_POST(self):
        body = self.read_body()
        group_version = REVIEW_PATHS.get(self.path_only())
        if group_version is None:
            self.not_found()
            return
        content_type = self.headers.get("Content-Type", "")
        try:
            api_version, kind = type_meta(content_type, body)
        except ValueError as e:
            self.send_json(400, status(400, "BadRequest", "cannot decode the body: %s" % e))
            return
        if (api_version, kind) != (group_version, "SelfSubjectReview"):
            msg = "expected a %s SelfSubjectReview, got %s %s"
            self.send_json(400, status(400, "BadRequest", msg % (group_version, api_version, kind)))
            return
        user, groups = identity(self.connection.getpeercert())
        log("%s authenticated as user=%r groups=%r" % (self.address_string(), user, groups))
        self.send_json(
            201,
            {
                "kind": "SelfSubjectReview",
                "apiVersion": group_version,
                "metadata": {"creationTimestamp": None},
                "status": {
                    "userInfo": {"username": user, "groups": groups + ["system:authenticated"]}
                },
            },
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, tls):
        self.tls = tls
        super().__init__(addr, Handler)
        host, port = self.server_address[:2]
        self.address = "%s:%d" % (host, port)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so one slow or refused
        # client never holds up the others.
        request.settimeout(30)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("%s:%d TLS handshake refused: %s" % (client_address[0], client_address[1], e))
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        log("%s:%d error: %s" % (client_address[0], client_address[1], sys.exc_info()[1]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--cert", required=True, help="serving certificate (PEM)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--client-ca", required=True, help="the only CAs client certificates may chain to")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = p.parse_args()

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.cert, args.key)
    # Only this CA: no system trust store is loaded, and a client without a certificate, or with
    # one that does not chain to it (or is not for clientAuth), fails the handshake.
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.load_verify_locations(cafile=args.client_ca)
    # Like Go's crypto/x509 (and so kube-apiserver's --client-ca-file), every certificate in the
    # file is a trust anchor, even an intermediate CA.
    tls.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    tls.set_alpn_protocols(["http/1.1"])

    server = Server(("127.0.0.1", args.port), tls)
    stop = threading.Event()
    why = []

    def on_signal(signum, _frame):
        why.append("signal %d" % signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin():
        # os.read, not sys.stdin: a daemon thread blocked inside the buffered reader would hold
        # its lock while the interpreter shuts down.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        why.append("stdin closed")
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=server.serve_forever, daemon=True).start()

    sys.stdout.write("%d\n" % server.server_address[1])
    sys.stdout.flush()
    log("listening on https://%s" % server.address)

    while not stop.wait(1.0):
        pass
    log("%s: stopping" % why[0])
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
