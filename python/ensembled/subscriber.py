"""Subscriber: the daemon's publications, one body per task.

- Exact task matching: it subscribes to each task's whole topic (NUL
  included) and keeps a message only if its topic frame is exactly a v2
  topic and the body names the same task: the subscriber of `med` never
  takes `medmcqa`'s ensemble.
- Last-value cache: `bodies` holds the newest body of each task; the
  daemon resends its own cache on every (re)subscription, so a subscriber
  started late, or reconnected, has the current ensemble at once.
- Version ordering: a body older than the one held is ignored (`stale`),
  so the view never goes backwards. A daemon restarted without its state
  directory starts its versions again from 1: after the connection drops
  (seen on a ZeroMQ socket monitor) one lower version per task is taken
  (`restarts` counts those); with one publisher nothing else can send one.
- Reconnects: ZeroMQ reconnects on its own (reconnect_ivl_ms) and the
  subscription is replayed to the new daemon.
- Bad messages never raise: a frame count, topic, MessagePack or UTF-8
  error, or a body without task/version, is counted in `rejected` and
  skipped.
"""
import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from .protocol import TOPIC_PREFIX, task_of_topic, topic


class Subscriber:
    """Follows `endpoint` (the daemon's publish.bind) for `tasks` (names), or
    every task when tasks is None."""

    def __init__(self, endpoint, tasks=None, context=None, reconnect_ivl_ms=100, curve=None):
        self._ctx = context or zmq.Context.instance()
        self.tasks = None if tasks is None else [t for t in tasks]
        self.bodies = {}      # task -> newest body (decoded map)
        self.rejected = 0     # messages not understood
        self.stale = 0        # bodies older than the one held
        self.restarts = 0     # bodies taken after a reconnect despite a lower version
        self.reconnects = 0   # connections made after the first one
        self._fresh = set()   # tasks whose next body is taken whatever its version
        self._connected_once = False
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RECONNECT_IVL, reconnect_ivl_ms)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(reconnect_ivl_ms, 1000))
        if curve:
            self._sock.curve_serverkey, self._sock.curve_publickey, \
                self._sock.curve_secretkey = curve
        if self.tasks is None:
            self._sock.setsockopt(zmq.SUBSCRIBE, TOPIC_PREFIX)
        else:
            for t in self.tasks:
                self._sock.setsockopt(zmq.SUBSCRIBE, topic(t))
        self._monitor = self._sock.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self._sock.connect(endpoint)

    @property
    def socket(self):
        """The SUB socket, to poll with others (zmq.Poller)."""
        return self._sock

    def get(self, task):
        """The newest body of task, or None."""
        return self.bodies.get(task)

    def _events(self):
        while self._monitor.poll(0):
            ev = recv_monitor_message(self._monitor)
            if ev["event"] == zmq.EVENT_DISCONNECTED:
                # What comes next may come from a new daemon. Marked at the
                # disconnect, not at the connect: the monitor's CONNECTED
                # event may be read after the new connection's first message.
                self._fresh = set(self.bodies)
            elif ev["event"] == zmq.EVENT_CONNECTED:
                if self._connected_once:
                    self.reconnects += 1
                self._connected_once = True

    def _take(self, frames):
        """The (task, body) of a message, or None (counted)."""
        if len(frames) != 2:
            self.rejected += 1
            return None
        task = task_of_topic(frames[0])
        if task is None or (self.tasks is not None and task not in self.tasks):
            self.rejected += 1
            return None
        try:
            body = msgpack.unpackb(frames[1], raw=False, strict_map_key=False)
        except Exception:  # noqa: BLE001 - any decoding error is bad input
            self.rejected += 1
            return None
        if not isinstance(body, dict) or body.get("task") != task \
                or not isinstance(body.get("version"), int):
            self.rejected += 1
            return None
        return task, body

    def _accept(self, task, body):
        held = self.bodies.get(task)
        if held is not None and body["version"] < held["version"]:
            # With one publisher, a lower version after the connection
            # dropped can only come from a daemon started again without its
            # state. Bodies with higher versions read in between may be the
            # old connection's last ones, so they do not end that window.
            if task not in self._fresh:
                self.stale += 1
                return False
            self._fresh.discard(task)
            self.restarts += 1
        if held is not None and body == held:
            return False  # the same body again (last-value cache)
        self.bodies[task] = body
        return True

    def poll(self, timeout_ms=0):
        """Takes every message waiting, waiting at most timeout_ms for the
        first. Returns the tasks whose body changed, in arrival order."""
        changed = []
        self._events()
        while self._sock.poll(timeout_ms):
            timeout_ms = 0
            self._events()
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            got = self._take(frames)
            if got and self._accept(*got) and got[0] not in changed:
                changed.append(got[0])
        return changed

    def close(self):
        self._sock.disable_monitor()
        self._monitor.close(0)
        self._sock.close(0)
