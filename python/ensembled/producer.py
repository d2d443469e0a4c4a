"""Producer: prediction and label events to the daemon's ingest socket.

Sending never blocks the caller. Events wait in a bounded queue of their own
and go to a PUSH socket with a send high-water mark, always with
zmq.NOBLOCK; when the daemon is down or slow, the socket's queue fills, then
this queue, and what does not fit is dropped and counted (`dropped`).
close() is the one call that may wait, at most its timeout, for what is
queued.
"""
import collections
import time

import msgpack
import zmq

from .protocol import PROTOCOL_VERSION, name_valid

MAX_BATCH = 10000  # events per message (docs/protocol.md)


def _check_name(what, name):
    if not isinstance(name, str) or not name_valid(name):
        raise ValueError("%s %r: a name is a non-empty str, valid UTF-8 without NUL"
                         % (what, name))


def _check_query(query):
    ok = (isinstance(query, int) and not isinstance(query, bool) and 0 <= query < 2 ** 64) \
        or (isinstance(query, (str, bytes)) and len(query) > 0)
    if not ok:
        raise ValueError("query %r: an int from 0 to 2^64 - 1, a non-empty str or bytes"
                         % (query,))


def _check_label(what, label, abstain_ok):
    if label is None or label == "?":
        if not abstain_ok:
            raise ValueError("%s: the truth cannot be %r" % (what, label))
        return
    if isinstance(label, int) and not isinstance(label, bool):
        return
    _check_name(what, label)


class Producer:
    """Events to `endpoint` (the daemon's ingest.bind).

    protocol: the version every event says (`protocol` key), or None to
    leave it out. queue_max: events this object holds beyond the socket's
    sndhwm messages. An existing zmq.Context may be passed."""

    def __init__(self, endpoint, context=None, protocol=PROTOCOL_VERSION, sndhwm=1000,
                 queue_max=10000, curve=None):
        self.protocol = protocol
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        if curve:
            self._sock.curve_serverkey, self._sock.curve_publickey, \
                self._sock.curve_secretkey = curve
        self._sock.connect(endpoint)
        self._queue = collections.deque()
        self.queue_max = queue_max
        self.sent = 0       # messages handed to the socket
        self.dropped = 0    # messages dropped: both queues full
        self._closed = False

    # -- events ----------------------------------------------------------
    def _event(self, kind, task, query, **fields):
        _check_name("task", task)
        _check_query(query)
        ev = {"kind": kind, "task": task, "query": query}
        if self.protocol is not None:
            ev["protocol"] = self.protocol
        for k, v in fields.items():
            if v is not None:
                ev[k] = v
        return ev

    def prediction_event(self, task, query, predictions=None, model=None, label=None,
                         cost=None, ts=None):
        """A prediction event: one model's answer (model, label) or several
        ({model: answer}); an answer "?" or None is an abstention."""
        if predictions is not None:
            if not predictions:
                raise ValueError("predictions: at least one answer")
            for m, a in predictions.items():
                _check_name("model", m)
                _check_label("answer of %s" % m, a, True)
            return self._event("prediction", task, query, predictions=dict(predictions),
                               cost=cost, ts=ts)
        _check_name("model", model)
        _check_label("answer", label, True)
        ev = self._event("prediction", task, query, model=model, cost=cost, ts=ts)
        ev["label"] = label
        return ev

    def label_event(self, task, query, label, ts=None):
        """A label event: the truth of a query."""
        _check_label("label", label, False)
        return self._event("label", task, query, label=label, ts=ts)

    def prediction(self, task, query, **kw):
        """Sends one prediction event (prediction_event's arguments). Returns
        whether it was queued; never blocks."""
        return self.send(self.prediction_event(task, query, **kw))

    def label(self, task, query, label, ts=None):
        """Sends one label event. Returns whether it was queued."""
        return self.send(self.label_event(task, query, label, ts))

    def batch(self, events):
        """Sends events as batches of at most 10,000 (one message each: the
        daemon applies a batch all or nothing). Returns how many messages
        were queued."""
        events = list(events)
        queued = 0
        for i in range(0, len(events), MAX_BATCH):
            queued += self.send(events[i:i + MAX_BATCH])
        return queued

    # -- the queue -------------------------------------------------------
    def send(self, obj):
        """Queues one message (an event map or a list of them) and hands
        what the socket takes to it, without waiting. Returns False when it
        was dropped (both queues full)."""
        if self._closed:
            raise ValueError("producer closed")
        self.flush()
        if len(self._queue) >= self.queue_max:
            self.dropped += 1
            return False
        # use_bin_type=False: bytes go as MessagePack str, so that a query id
        # given as bytes reaches the daemon as the string it expects.
        self._queue.append(msgpack.packb(obj, use_bin_type=False))
        self.flush()
        return True

    def flush(self):
        """Hands queued messages to the socket until it refuses one
        (zmq.NOBLOCK: never waits). Returns how many are still queued."""
        while self._queue:
            try:
                self._sock.send(self._queue[0], zmq.NOBLOCK)
            except zmq.Again:
                break
            self._queue.popleft()
            self.sent += 1
        return len(self._queue)

    @property
    def pending(self):
        """Messages waiting in this object's queue (not yet in the socket)."""
        return len(self._queue)

    def close(self, timeout=1.0):
        """Waits at most timeout seconds for queued messages to leave, then
        closes the socket; what is left is counted as dropped."""
        if self._closed:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        while self.flush():
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1, zmq.POLLOUT):
                break
        self.dropped += len(self._queue)
        self._queue.clear()
        left = max(0.0, deadline - time.monotonic())
        self._sock.close(linger=int(left * 1000))
        self._closed = True
