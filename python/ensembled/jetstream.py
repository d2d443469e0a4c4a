"""NATS JetStream for the Python side of ensembled (docs/scale.md): publish
events to a stream, read the published bodies from a key-value bucket.

Debian packages no Python NATS client, so this speaks the NATS text
protocol itself: enough for JetStream publishes (with a message id, so that
a retried publish is stored once) and the JetStream API's direct message
reads. It speaks TLS (a `tls://` URL, a server that requires it, or a CA
file given) and authenticates with a user and password (in the URL,
`nats://user:pass@host:port`, or as arguments) or a token. Credentials
files (JWT and nkey) are not supported: for those, use a full client
library (nats-py) with the same subjects.
"""
import base64
import itertools
import json
import re
import socket
import ssl
import time
import urllib.parse
import uuid

import msgpack

from .protocol import name_valid


def _parse(url):
    """(scheme, host, port, user, password) of "[scheme://][user[:pass]@]host[:port]"."""
    url = url.strip()
    if "://" not in url:
        url = "nats://" + url
    u = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(u.username) if u.username else None
    password = urllib.parse.unquote(u.password) if u.password else None
    return u.scheme, u.hostname or "127.0.0.1", u.port or 4222, user, password


def _redact(urls):
    """urls as errors may show them: each password replaced by ***."""
    return ",".join(re.sub(r"^(\w+://[^:@/]*:)[^@]*@", r"\1***@", u.strip())
                    for u in urls.split(","))


class NatsError(Exception):
    """The server refused, or nothing answered in time."""


class Connection:
    """One connection to the first server of urls ("nats://h:p,...") that
    answers; requests and replies in the calling thread.

    TLS is used when the URL says tls://, when the server requires it, or
    when tls_ca is given: the server's certificate is checked against
    tls_ca (else the system's CAs) and its name; tls_cert and tls_key
    present a client certificate. user and password (or those of the URL),
    or token, authenticate. A refused TLS handshake or login raises
    NatsError naming it."""

    def __init__(self, urls, timeout=5.0, tls_ca=None, tls_cert=None, tls_key=None,
                 user=None, password=None, token=None):
        self.timeout = timeout
        self.buf = b""
        self.inbox = "_INBOX." + uuid.uuid4().hex
        self.ids = itertools.count(1)
        last = None
        for url in urls.split(","):
            scheme, host, port, url_user, url_pass = _parse(url)
            try:
                self.sock = socket.create_connection((host, port), timeout)
                break
            except OSError as e:
                last = e
        else:
            raise NatsError("no NATS server answers at %s: %s" % (_redact(urls), last))
        auth = {}
        if user or url_user:
            auth = {"user": user or url_user, "pass": password or url_pass or ""}
        elif token:
            auth = {"auth_token": token}
        tls = (tls_ca, tls_cert, tls_key) if scheme == "tls" or tls_ca else None
        try:
            self._handshake(_redact(urls), host, tls, auth)
        except BaseException:
            self.sock.close()
            raise

    def _handshake(self, urls, host, tls, auth):
        """INFO, TLS if tls (ca, cert, key) or the server requires it,
        CONNECT with auth; urls (redacted) for the errors."""
        self.sock.settimeout(self.timeout)
        info = self._info(urls)
        if tls or info.get("tls_required"):
            self._start_tls(host, *(tls or (None, None, None)))
        connect = dict({"verbose": False, "pedantic": False, "headers": True,
                        "no_responders": True, "lang": "python-ensembled",
                        "tls_required": isinstance(self.sock, ssl.SSLSocket)}, **auth)
        # PING after CONNECT: the server answers PONG once it took the
        # login, or -ERR (an authorization violation) and closes.
        self.sock.sendall(b"CONNECT %s\r\nPING\r\n" % json.dumps(connect).encode())
        while True:
            line = self._line()
            if line.startswith(b"PONG"):
                break
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
            elif not line.startswith((b"INFO", b"+OK")):
                raise NatsError("%s refused the connection: %s"
                                % (urls, line.decode(errors="replace")))
        self.sock.sendall(b"SUB %s.* 1\r\n" % self.inbox.encode())

    def _info(self, urls):
        try:
            line = self._line()
        except (OSError, NatsError) as e:
            raise NatsError("not a NATS server at %s: %s" % (urls, e))
        if not line.startswith(b"INFO"):
            raise NatsError("not a NATS server: %s" % urls)
        try:
            return json.loads(line[4:])
        except ValueError:
            return {}

    def _start_tls(self, host, ca, cert, key):
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
        except (ssl.SSLError, OSError) as e:
            raise NatsError("TLS with %s failed: %s" % (host, e))

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise NatsError("the NATS server closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload=b"", headers=None):
        """(status line and headers as bytes, payload) of the reply."""
        reply = "%s.%d" % (self.inbox, next(self.ids))
        if headers:
            hdr = b"NATS/1.0\r\n" + b"".join(
                b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items()) + b"\r\n"
            self.sock.sendall(b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(), reply.encode(), len(hdr), len(hdr) + len(payload), hdr,
                payload))
        else:
            self.sock.sendall(b"PUB %s %s %d\r\n%s\r\n" % (
                subject.encode(), reply.encode(), len(payload), payload))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            parts = self._line().split()
            if not parts:
                continue
            if parts[0] == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif parts[0] == b"-ERR":
                raise NatsError(b" ".join(parts[1:]).decode(errors="replace"))
            elif parts[0] == b"MSG":
                data = self._take(int(parts[-1]))
                if parts[1].decode() == reply:
                    return b"", data
            elif parts[0] == b"HMSG":
                raw = self._take(int(parts[-1]))
                hdr, data = raw[:int(parts[-2])], raw[int(parts[-2]):]
                if parts[1].decode() == reply:
                    if b" 503" in hdr.split(b"\r\n", 1)[0]:
                        raise NatsError("no responders on %s (no stream takes it?)" % subject)
                    return hdr, data
        raise NatsError("no reply on %s within %.1f s" % (subject, self.timeout))

    def api(self, subject, body=None):
        """A JetStream API call ($JS.API.<subject>, a JSON body): the decoded
        JSON reply ({} when empty)."""
        payload = json.dumps(body).encode() if body is not None else b""
        _, data = self.request("$JS.API." + subject, payload)
        return json.loads(data) if data else {}


class JetStreamProducer:
    """Publishes events to a JetStream stream, each one stored before
    publish() returns (the stream's acknowledgement), retried with the same
    message id so that the stream keeps one copy. Subjects default to
    events.<task>, the sharding scheme of docs/scale.md."""

    def __init__(self, urls, subject=None, timeout=5.0, retry_s=30.0, **auth):
        """auth: tls_ca, tls_cert, tls_key, user, password, token (Connection)."""
        self.urls, self.subject, self.timeout, self.retry_s = urls, subject, timeout, retry_s
        self.auth = auth
        self.conn = Connection(urls, timeout, **auth)
        self.published = 0

    def close(self):
        self.conn.close()

    def publish(self, obj, task=None, msg_id=None):
        """Publishes one message (an event map, a batch, or bytes as they
        are). Returns the stream position it was stored at."""
        if not isinstance(obj, (bytes, bytearray)):
            for e in obj if isinstance(obj, list) else [obj]:
                for k in ("task", "model", "label"):
                    if isinstance(e.get(k), str) and not name_valid(e[k]):
                        raise ValueError("%s %r is not valid UTF-8 without NUL" % (k, e[k]))
            task = task or (obj[0] if isinstance(obj, list) else obj).get("task", "default")
            obj = msgpack.packb(obj, use_bin_type=True)
        subject = self.subject or "events." + (task or "default")
        headers = {"Nats-Msg-Id": msg_id or uuid.uuid4().hex}
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                _, data = self.conn.request(subject, bytes(obj), headers)
                ack = json.loads(data)
                if "error" in ack:
                    raise NatsError(ack["error"].get("description", str(ack["error"])))
                self.published += 1
                return ack["seq"]
            except (NatsError, OSError, ValueError) as e:
                if time.monotonic() >= deadline:
                    raise NatsError("%s: not stored within %.0f s: %s"
                                    % (subject, self.retry_s, e))
                time.sleep(0.2)
                try:
                    self.conn.close()
                    self.conn = Connection(self.urls, self.timeout, **self.auth)
                except NatsError:
                    pass


class KVReader:
    """Reads the bodies ensembled daemons put in a key-value bucket
    ([publish] nats_kv; key = task). latest() orders them by stream_seq,
    the stream position each body reflects, never by version (each replica
    numbers its own versions): a reader never goes backwards."""

    def __init__(self, urls, bucket, timeout=5.0, **auth):
        """auth: tls_ca, tls_cert, tls_key, user, password, token (Connection)."""
        self.bucket = bucket
        self.conn = Connection(urls, timeout, **auth)
        self.bodies = {}

    def close(self):
        self.conn.close()

    def get(self, task):
        """The bucket's body for task (with its stream_seq and revision), or
        None."""
        rep = self.conn.api("STREAM.MSG.GET.KV_" + self.bucket,
                            {"last_by_subj": "$KV.%s.%s" % (self.bucket, task)})
        if "message" not in rep:
            return None
        body = msgpack.unpackb(base64.b64decode(rep["message"].get("data", "")), raw=False,
                               strict_map_key=False)
        body["revision"] = rep["message"]["seq"]
        return body

    def latest(self, task):
        """The body with the highest stream_seq seen for task so far."""
        body = self.get(task)
        cur = self.bodies.get(task)
        if body is not None and (cur is None or body["stream_seq"] >= cur["stream_seq"]):
            self.bodies[task] = cur = body
        return cur
