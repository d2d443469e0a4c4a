"""NATS JetStream for the Python side of ensembled (docs/scale.md): publish
events to a stream, read the published bodies from a key-value bucket.

Debian packages no Python NATS client, so this speaks the NATS text
protocol itself, over a plain TCP socket: enough for JetStream publishes
(with a message id, so that a retried publish is stored once) and the
JetStream API's direct message reads. No TLS and no credentials: for those,
use a full client library (nats-py) with the same subjects.
"""
import base64
import itertools
import json
import socket
import time
import uuid

import msgpack

from .protocol import name_valid


def _hostport(url):
    url = url.strip()
    if "://" in url:
        url = url.split("://", 1)[1]
    host, _, port = url.rpartition(":")
    return host or "127.0.0.1", int(port or 4222)


class NatsError(Exception):
    """The server refused, or nothing answered in time."""


class Connection:
    """One connection to the first server of urls ("nats://h:p,...") that
    answers; requests and replies in the calling thread."""

    def __init__(self, urls, timeout=5.0):
        last = None
        for url in urls.split(","):
            try:
                self.sock = socket.create_connection(_hostport(url), timeout)
                break
            except OSError as e:
                last = e
        else:
            raise NatsError("no NATS server answers at %s: %s" % (urls, last))
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.inbox = "_INBOX." + uuid.uuid4().hex
        self.ids = itertools.count(1)
        if not self._line().startswith(b"INFO"):
            raise NatsError("not a NATS server: %s" % urls)
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"lang":"python-ensembled"}\r\n'
                          b"SUB %s.* 1\r\n" % self.inbox.encode())

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

    def __init__(self, urls, subject=None, timeout=5.0, retry_s=30.0):
        self.urls, self.subject, self.timeout, self.retry_s = urls, subject, timeout, retry_s
        self.conn = Connection(urls, timeout)
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
                    self.conn = Connection(self.urls, self.timeout)
                except NatsError:
                    pass


class KVReader:
    """Reads the bodies ensembled daemons put in a key-value bucket
    ([publish] nats_kv; key = task). latest() orders them by stream_seq,
    the stream position each body reflects, never by version (each replica
    numbers its own versions): a reader never goes backwards."""

    def __init__(self, urls, bucket, timeout=5.0):
        self.bucket = bucket
        self.conn = Connection(urls, timeout)
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
