#!/usr/bin/env python3
"""What the daemon counts and decodes at the edges of its protocol
(docs/protocol.md):

- an ingest message of more frames than the daemon keeps is decoded from
  its last frame, as for any multi-frame message;
- `published` counts publications, one per new version; bodies the
  last-value cache sends again to new subscriptions are `cache_resends`.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def row(q, truth="A"):
    return [{"kind": "prediction", "query": q, "predictions": {"m0": truth, "m1": "B"}},
            {"kind": "label", "query": q, "label": truth}]


class FramesTest(harness.DaemonTestCase):

    def test_long_message_decoded_from_its_last_frame(self):
        d = self.daemon()
        push = d.pusher()
        for nframes in (2, 8, 9, 10, 40):
            before = d.status()
            # Every frame but the last is a different valid event (a label
            # of another query) or junk, so that decoding any of them shows.
            frames = [harness.pack({"kind": "label", "query": "wrong%d" % i, "label": "B"})
                      if i % 2 else b"\xc1junk" for i in range(nframes - 1)]
            frames.append(harness.pack(row("q%d" % nframes)))
            push.send_multipart(frames)
            st = d.wait_messages(before["messages_in"] + 1)
            self.assertEqual(st["events_in"], before["events_in"] + 2,
                             "%d frames: not the last frame's two events" % nframes)
            self.assertEqual(st["rejected"], before["rejected"], "%d frames" % nframes)
            t = d.task(st=st)
            self.assertEqual(t["pending"], 0, "%d frames: a middle frame was decoded" % nframes)
        self.assertEqual(d.task()["rows"], 5)


class PublishedTest(harness.DaemonTestCase):

    def test_cache_resends_counted_apart(self):
        d = self.daemon()
        d.sync_send(*[row("q%d" % i) for i in range(20)])
        first = d.subscriber()
        d.recompute_and_receive(first)
        st0 = d.status()
        self.assertEqual(st0["published"], 1)
        self.assertEqual(st0["tasks"]["default"]["version"], 1)
        subs = []
        for i in range(30):
            s = d.subscriber()
            _, body = d.recv_pub(s, timeout=5)
            self.assertEqual(body["version"], 1)
            subs.append(s)
        st = d.status()
        self.assertEqual(st["published"], 1, "a cache resend counted as a publication")
        self.assertEqual(st["cache_resends"], st0["cache_resends"] + 30)
        self.assertEqual(st["tasks"]["default"]["version"], 1)
        d.recompute_and_receive(first)
        st = d.status()
        self.assertEqual(st["published"], 2)
        self.assertEqual(st["cache_resends"], st0["cache_resends"] + 30)


if __name__ == "__main__":
    harness.main()
