"""Names, topics and the exploration rule of wire protocol v2
(docs/protocol.md)."""
import struct

import xxhash

PROTOCOL_VERSION = 2
TOPIC_PREFIX = b"ensemble."


def _name_bytes(name):
    return name.encode("utf-8") if isinstance(name, str) else bytes(name)


def name_valid(name):
    """Whether name (str or bytes) may name a task, model or label: valid
    UTF-8 (shortest form, no surrogates, at most U+10FFFF) without NUL."""
    try:
        b = _name_bytes(name)
        b.decode("utf-8", errors="strict")
    except (UnicodeError, TypeError):
        return False
    return len(b) > 0 and b"\0" not in b


def topic(task):
    """The publication topic of a task: b"ensemble." + name + one NUL byte.
    Subscribing to it (NUL included) matches that task only."""
    if not name_valid(task):
        raise ValueError("task name %r is not valid UTF-8 without NUL" % (task,))
    return TOPIC_PREFIX + _name_bytes(task) + b"\0"


def task_of_topic(frame):
    """The task a topic frame names, or None if the frame is not a v2 topic
    (prefix, a valid name, one final NUL)."""
    if not frame.startswith(TOPIC_PREFIX) or not frame.endswith(b"\0"):
        return None
    name = frame[len(TOPIC_PREFIX):-1]
    if not name_valid(name):
        return None
    return name.decode("utf-8")


def query_key(query):
    """The key of a query id: b"u" + 8 big-endian bytes for an integer,
    b"s" + its bytes for a string (UTF-8) or bytes."""
    if isinstance(query, bool):
        raise TypeError("a query id is an int, str or bytes, not bool")
    if isinstance(query, int):
        if not 0 <= query < 2 ** 64:
            raise ValueError("an integer query id is between 0 and 2^64 - 1")
        return b"u" + struct.pack(">Q", query)
    if isinstance(query, str):
        return b"s" + query.encode("utf-8")
    if isinstance(query, (bytes, bytearray)):
        return b"s" + bytes(query)
    raise TypeError("a query id is an int, str or bytes")


def explore_hash(task, query):
    """XXH3-64 with seed 1 of task || 0x00 || key."""
    return xxhash.xxh3_64_intdigest(_name_bytes(task) + b"\0" + query_key(query), seed=1)


def explores(task, query, rate):
    """Whether the query is an exploration query at this rate. Python
    compares the integer hash with the float threshold exactly."""
    return explore_hash(task, query) < float(rate) * 2.0 ** 64
