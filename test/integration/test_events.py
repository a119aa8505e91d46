"""Event webhooks (events.*, docs/integrations.md), end to end: a real siprecd
and a real HTTP receiver (http.server on loopback) that verifies the
X-Siprec-Signature of every request it gets.

- every event of a call (started, updated by a pause, ended, published)
  arrives signed, with its ids, in order;
- the receiver down (connection refused) while calls are recorded: the calls
  are answered and published meanwhile, and once it is back every event
  arrives (at least once), the ids dedupe to exactly the expected set, in
  lifecycle order per recording;
- siprecd killed (SIGKILL) with the events of a call queued but not
  delivered: after a restart on the same folders they are delivered;
- siprecd killed (SIGKILL) the instant it logs that an event is published
  (the receiver down, so nothing was delivered): the restarted gateway
  delivers it, and every other event of the call, in order.
"""

import glob
import hashlib
import hmac
import json
import os
import re
import signal
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (Daemon, answered_call_recording, describe, free_tcp_port, metadata_xml, multipart,
                     recording_for_call, sdp, siprec_headers, siprec_streams, wait_until)

SECRET = "test-secret-0123456789abcdef"
BOUNDARY = "OSS-unique-boundary-42"
CTYPE = f'multipart/mixed;boundary="{BOUNDARY}"'
# The events of a call paused once and ended by BYE, in the order they happen.
LIFECYCLE = ["session.started", "session.updated", "session.ended", "recording.published"]


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: int = 300) -> bool:
    """What a receiver does (docs/integrations.md): t=...,v1=... over "<t>.<body>"."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = fields.get("t", ""), fields.get("v1", "")
    if not t.isdigit() or abs(now - int(t)) > tolerance_s:
        return False
    want = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, v1)


class Receiver:
    """An event receiver on a loopback port; stop() closes the port (connection
    refused), start() listens again on the same port."""

    def __init__(self):
        self.port = free_tcp_port()
        self.lock = threading.Lock()
        self.received = []      # documents with a valid signature, in arrival order
        self.bad = []           # (header, body) whose signature did not verify
        self.httpd = None

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sig = self.headers.get("X-Siprec-Signature", "")
                ok = verify(SECRET, sig, body, time.time())
                with receiver.lock:
                    if ok:
                        doc = json.loads(body)
                        doc["_header_id"] = self.headers.get("X-Siprec-Event-Id")
                        receiver.received.append(doc)
                    else:
                        receiver.bad.append((sig, body))
                self.send_response(204 if ok else 401)
                self.end_headers()

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/events"

    def events(self):
        with self.lock:
            return list(self.received)

    def ids(self):
        return {e["id"] for e in self.events()}


def record_call(test, daemon, pause=True, wait=True):
    """An answered call with tones, paused once by a re-INVITE, ended by BYE;
    returns its Call-ID and, once it is published, its recording JSON
    (wait=False: None, returned as soon as the BYE is answered)."""
    def invite(call):
        body = multipart([("application/sdp", sdp(siprec_streams(2))),
                          ("application/rs-metadata+xml", metadata_xml(2))], BOUNDARY)
        return call.invite(body, CTYPE, siprec_headers())

    def paused(call):
        r = call.invite(sdp(siprec_streams(2, "inactive"), version=2), "application/sdp")
        test.assertEqual(r.status if r else None, 200, describe(r))
    call_id, _, doc = answered_call_recording(test, daemon, invite, duration_ms=400,
                                              during=paused if pause else None, timeout=30 if wait else None)
    return call_id, doc


def expected_ids(recording_id):
    return {f"{recording_id}.10", f"{recording_id}.20.000001", f"{recording_id}.30", f"{recording_id}.40"}


class EventsCase(unittest.TestCase):
    def setUp(self):
        self.receiver = Receiver()
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            if d.alive():
                d.kill()
            d.cleanup()
        self.receiver.stop()

    def daemon(self, **kw):
        d = Daemon(config={"events": {"url": self.receiver.url, "secret": SECRET, "timeout_ms": 2000,
                                      "max_backoff_s": 2}}, **kw)
        self.daemons.append(d)
        return d

    def check_recording_events(self, recording_id, call_id, doc):
        """Every expected event of one recording arrived (deduped by id), in
        lifecycle order by first arrival, with its ids and data."""
        mine = [e for e in self.receiver.events() if e["recording_id"] == recording_id]
        self.assertEqual({e["id"] for e in mine}, expected_ids(recording_id), [e["id"] for e in mine])
        first = []
        for e in mine:
            if e["type"] not in first:
                first.append(e["type"])
        self.assertEqual(first, LIFECYCLE)
        for e in mine:
            self.assertEqual(e["_header_id"], e["id"])
            self.assertEqual(e["call_id"], call_id)
            self.assertEqual(e["conversation_id"], doc["conversation_id"])
            self.assertTrue(e["time"].endswith("Z"), e)
            self.assertIn("node", e["gateway"])
        by_type = {e["type"]: e for e in mine}
        self.assertEqual(by_type["session.updated"]["data"]["changes"], ["paused"])
        self.assertEqual(by_type["session.ended"]["data"]["cause"], "BYE from SRC")
        self.assertTrue(all(s["paused"] or s["held"] for s in by_type["session.updated"]["data"]["streams"]))
        pub = by_type["recording.published"]["data"]
        self.assertEqual(pub["complete"], doc["complete"])
        self.assertEqual([a["sha256"] for a in pub["audio"]], [a["sha256"] for a in doc["audio"]])
        with open(pub["json"]["path"], "rb") as f:
            self.assertEqual(pub["json"]["sha256"], hashlib.sha256(f.read()).hexdigest())


class EventsDeliveredTest(EventsCase):
    def test_every_event_signed_with_ids_in_order(self):
        self.receiver.start()
        d = self.daemon().start()
        call_id, doc = record_call(self, d)
        rid = doc["recording_id"]
        self.assertTrue(wait_until(lambda: expected_ids(rid) <= self.receiver.ids(), 30),
                        f"{sorted(self.receiver.ids())}\n" + d.diagnostics())
        self.assertEqual(self.receiver.bad, [])
        self.check_recording_events(rid, call_id, doc)
        self.assertEqual(d.stop(), 0)


class EventsReceiverDownTest(EventsCase):
    CALLS = 3

    def test_receiver_down_loses_nothing(self):
        d = self.daemon().start()   # the receiver is not listening yet: connection refused
        calls = [record_call(self, d) for _ in range(self.CALLS)]
        # Every call was answered and published while nobody took events; they wait on disk
        # and are retried (backoff capped at 2 s here).
        want = set().union(*(expected_ids(doc["recording_id"]) for _, doc in calls))
        self.assertTrue(wait_until(lambda: d.metrics().get("sgw_events_pending") == len(want), 30),
                        d.diagnostics())
        self.assertTrue(wait_until(lambda: d.metrics().get("sgw_event_attempt_failures_total") >= 6, 30))
        self.receiver.start()
        self.assertTrue(wait_until(lambda: want <= self.receiver.ids(), 60),
                        f"missing {sorted(want - self.receiver.ids())}\n" + d.diagnostics())
        self.assertEqual(self.receiver.ids(), want)  # nothing else, whatever was repeated
        self.assertEqual(self.receiver.bad, [])
        for call_id, doc in calls:
            self.check_recording_events(doc["recording_id"], call_id, doc)
        self.assertTrue(wait_until(lambda: d.metrics().get("sgw_events_pending") == 0, 10))
        self.assertEqual(d.stop(), 0)


class EventsKillTest(EventsCase):
    def test_kill_between_publish_and_delivery(self):
        d = self.daemon().start()
        call_id, doc = record_call(self, d)
        rid = doc["recording_id"]
        queue = os.path.join(d.tmp, "deliveries", "events")
        # recording.published is durably queued (its entry file), nothing delivered.
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(queue, f"{rid}.40.webhook.dq")), 30),
                        d.diagnostics())
        self.assertEqual(self.receiver.events(), [])
        # The recording is finished (its spool gone): only the event queue has work left.
        self.assertTrue(wait_until(lambda: glob.glob(os.path.join(d.spool_dir, "*.spool")) == [], 30))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        self.receiver.start()
        d2 = self.daemon()
        d2.recordings_dir, d2.spool_dir = d.recordings_dir, d.spool_dir
        d2.start()
        self.assertTrue(wait_until(lambda: expected_ids(rid) <= self.receiver.ids(), 30),
                        f"{sorted(self.receiver.ids())}\n" + d2.diagnostics())
        self.assertEqual(self.receiver.ids(), expected_ids(rid))
        self.assertEqual(self.receiver.bad, [])
        self.check_recording_events(rid, call_id, doc)
        self.assertEqual(d2.stop(), 0)


def wait_for_log(daemon, pattern: str, timeout: float = 30.0):
    """Returns the first match of regex `pattern` in the daemon's stderr, read as
    it is written (polled every 0.5 ms, so the caller acts within a millisecond
    or so of the line), or None after timeout."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    text = ""
    with open(daemon._stderr_path, "rb") as f:
        while time.monotonic() < deadline:
            chunk = f.read()
            if chunk:
                text += chunk.decode("utf-8", "replace")
                m = rx.search(text)
                if m:
                    return m
            else:
                time.sleep(0.0005)
    return None


class EventsKillRightAfterPublishTest(EventsCase):
    """publish() returns once the event is on disk: a gateway killed the moment it
    logs "event <id> (session.ended) published" (the receiver down, so nothing was
    delivered) still delivers session.ended after a restart, with every other event
    of the call, in order. The kill follows the log line, never a sleep: however
    fast or slow the machine, the event was published before the kill."""

    def test_kill_9_right_after_publish_loses_nothing(self):
        d = self.daemon().start()   # the receiver is not listening: connection refused
        call_id, _ = record_call(self, d, wait=False)
        m = wait_for_log(d, r"event (\S+)\.30 \(session\.ended\) published")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        self.assertIsNotNone(m, d.diagnostics())
        rid = m.group(1)
        self.assertEqual(self.receiver.events(), [])
        self.receiver.start()
        d2 = self.daemon()
        d2.recordings_dir, d2.spool_dir = d.recordings_dir, d.spool_dir
        d2.start()
        # The recording (finished by the first gateway, or recovered from its spool by this one).
        found = recording_for_call(d2.recordings_dir, call_id, 30)
        self.assertIsNotNone(found, d2.diagnostics())
        self.assertEqual(found[1]["recording_id"], rid)
        self.assertTrue(wait_until(lambda: expected_ids(rid) <= self.receiver.ids(), 30),
                        f"{sorted(self.receiver.ids())}\n" + d.diagnostics() + d2.diagnostics())
        self.assertEqual(self.receiver.ids(), expected_ids(rid))
        self.assertEqual(self.receiver.bad, [])
        self.check_recording_events(rid, call_id, found[1])
        self.assertEqual(d2.stop(), 0)


class SignatureTest(unittest.TestCase):
    def test_verify_refuses_tampering_and_old_timestamps(self):
        body = b'{"id": "x"}'
        t = int(time.time())
        v1 = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        self.assertTrue(verify(SECRET, f"t={t},v1={v1}", body, time.time()))
        self.assertFalse(verify(SECRET, f"t={t},v1={v1}", body + b" ", time.time()))
        self.assertFalse(verify("another-secret-0123456", f"t={t},v1={v1}", body, time.time()))
        self.assertFalse(verify(SECRET, f"t={t},v1={v1}", body, time.time() + 1000))


if __name__ == "__main__":
    unittest.main()
