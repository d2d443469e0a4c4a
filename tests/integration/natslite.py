"""A minimal NATS client for the tests: requests to the JetStream API over
the plain text protocol (no client library for Python is packaged in
Debian). Enough to create streams and key-value buckets, read their state
and fetch a bucket's value; the C client (libnats) does the real work in
ensembled and ensemblectl."""
import json
import socket
import time


class NatsLite:
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self._line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true}\r\nSUB _INBOX.lite 1\r\n')
        self.n = 0

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("nats server closed the connection")
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

    def request(self, subject, payload=b"", timeout=5.0):
        """(headers bytes, payload bytes) of the reply to one request."""
        self.n += 1
        reply = "_INBOX.lite.%d" % self.n
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        self.sock.sendall(b"SUB %s %d\r\nPUB %s %s %d\r\n%s\r\n" % (
            reply.encode(), 100 + self.n, subject.encode(), reply.encode(), len(payload),
            payload))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                line = self._line()
                if line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
                    continue
                parts = line.split()
                if not parts or parts[0] not in (b"MSG", b"HMSG"):
                    if parts and parts[0] == b"-ERR":
                        raise ConnectionError(line.decode())
                    continue
                if parts[0] == b"MSG":
                    data = self._take(int(parts[-1]))
                    hdr = b""
                else:
                    hlen, total = int(parts[-2]), int(parts[-1])
                    raw = self._take(total)
                    hdr, data = raw[:hlen], raw[hlen:]
                if parts[1].decode() == reply:
                    return hdr, data
            raise TimeoutError("no reply to %s" % subject)
        finally:
            self.sock.sendall(b"UNSUB %d\r\n" % (100 + self.n))

    def api(self, subject, body=None, timeout=5.0):
        """A JetStream API call: the decoded JSON reply."""
        _, data = self.request("$JS.API." + subject, body if body is not None else b"", timeout)
        return json.loads(data) if data else {}
