"""The call-control hook (hooks.*, docs/integrations.md), end to end: a real
siprecd, a real HTTP hook server (http.server on loopback) whose answer the
test picks per call with an X-Test-Hook header of the INVITE.

- record with overrides: 100 Trying, then 200; format, channel layout, key
  prefix take effect in the published recording, and the whole decision
  (retention, tags, stream) is in its JSON (`decision`);
- reject: 603 on the wire, nothing left on disk;
- a hook slower than hooks.timeout_ms, one that answers garbage, one that is
  down: on_error (record: 200 and the reason in the JSON; reject: 480);
- the SIP thread answers OPTIONS while 50 INVITEs wait for the hook.
"""

import glob
import json
import os
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (Call, Daemon, describe, metadata_xml, multipart, recording_for_call, sdp, send_tones,
                     siprec_headers, wait_until)
from test_recording import streams_for

OVERRIDES = {"action": "record", "format": "flac", "channel_layout": "caller-right",
             "retention_days": 30, "retention_mode": "GOVERNANCE", "tags": {"team": "sales", "tier": "gold"},
             "key_prefix": "acme/eu", "stream": {"url": "ws://127.0.0.1:9/audiohook"}}


class HookServer:
    """A hook on a free loopback port. Answers by the INVITE's X-Test-Hook header:
    overrides, reject, slow (after 2 s), garbage, hold (603 once release() is called)."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.held = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                doc = json.loads(body)
                with server.lock:
                    server.requests.append(doc)
                mode = (doc.get("headers", {}).get("X-Test-Hook") or ["overrides"])[0]
                status, answer = 200, b""
                if mode == "overrides":
                    answer = json.dumps(OVERRIDES).encode()
                elif mode == "reject":
                    answer = b'{"action": "reject", "sip_code": 603, "tags": {}}'
                elif mode == "slow":
                    time.sleep(2)
                    answer = b'{"action": "record"}'
                elif mode == "garbage":
                    answer = b'{"action": "record", "format": "mp3"'
                elif mode == "bad-field":
                    answer = b'{"action": "record", "retention_days": -4}'
                elif mode == "hold":
                    with server.lock:
                        server.held += 1
                    server.released.wait(60)
                    answer = b'{"action": "reject", "sip_code": 603}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the gateway gave up on us (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/invite"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def for_call(self, call_id):
        with self.lock:
            return [r for r in self.requests if r.get("call_id") == call_id]

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url():
    """A loopback URL nobody listens on (bound, then closed: connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/invite"


def siprec_invite(call, mode):
    body = multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                      ("application/rs-metadata+xml", metadata_xml(2))])
    return call.invite(body, 'multipart/mixed;boundary="OSS-unique-boundary-42"',
                       siprec_headers() + [("X-Test-Hook", mode)])


class HookCase(unittest.TestCase):
    ON_ERROR = "record"
    TIMEOUT_MS = 300
    URL = None  # None: the test's hook server

    @classmethod
    def setUpClass(cls):
        cls.hook = HookServer()
        cls.daemon = Daemon(config={"hooks": {"invite_url": cls.URL or cls.hook.url,
                                              "timeout_ms": cls.TIMEOUT_MS, "on_error": cls.ON_ERROR}})
        try:
            cls.daemon.start()
        except BaseException:
            cls.daemon.cleanup()
            cls.hook.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.daemon.stop()
            if code != 0:
                raise AssertionError(f"siprecd exited with {code}\n" + cls.daemon.diagnostics())
        finally:
            cls.daemon.cleanup()
            cls.hook.close()

    def recorded_call(self, mode):
        """An answered call with 1 s of tones, ended by BYE; returns (call, recording path, JSON)."""
        with self.daemon.client("udp") as c:
            call = Call(c)
            r = siprec_invite(call, mode)
            self.assertEqual(r.status if r else None, 200, describe(r) + self.daemon.diagnostics())
            self.assertIn(100, [p.status for p in call.provisionals], "100 Trying before the hook's decision")
            send_tones([m.port for m in call.answer.media], 1000, [440, 1000])
            bye = call.bye()
            self.assertEqual(bye.status if bye else None, 200, describe(bye))
        found = recording_for_call(self.daemon.recordings_dir, call.call_id, 30)
        self.assertIsNotNone(found, self.daemon.diagnostics())
        return call, found[0], found[1]

    def refused_call(self, mode, status):
        with self.daemon.client("udp") as c:
            call = Call(c)
            r = siprec_invite(call, mode)
            self.assertEqual(r.status if r else None, status, describe(r) + self.daemon.diagnostics())
        # A refused call leaves nothing: no spool, no recording.
        self.assertEqual(glob.glob(os.path.join(self.daemon.spool_dir, "*.spool")), [])
        self.assertIsNone(recording_for_call(self.daemon.recordings_dir, call.call_id, 0.5))
        return call


class HookDecisionTest(HookCase):
    def test_record_with_overrides(self):
        call, path, doc = self.recorded_call("overrides")
        # The hook saw the call: gateway, transport, the metadata's conversation id and rule,
        # participants, offered streams and codecs.
        (req,) = self.hook.for_call(call.call_id)
        self.assertEqual(req["event"], "invite")
        self.assertEqual(req["transport"].lower(), "udp")
        self.assertEqual(req["conversation_id"], doc["conversation_id"])
        self.assertTrue(req["conversation_id"] and req["conversation_id_rule"], req)
        self.assertEqual(len(req["metadata"]["participants"]), 2, req["metadata"])
        self.assertEqual([s["codec"] for s in req["streams"]], ["PCMA/8000", "PCMA/8000"])
        self.assertIn("PCMA", [c["encoding"] for c in req["streams"][0]["codecs_offered"]])
        self.assertEqual(req["recording_id"], doc["recording_id"])
        # The overrides took effect ...
        self.assertTrue(path.startswith(os.path.join(self.daemon.recordings_dir, "acme", "eu") + os.sep), path)
        self.assertEqual([a["format"] for a in doc["audio"]], ["flac"], doc["audio"])
        self.assertEqual([p["channel"] for p in doc["participants"] if p["role"] == "caller"], [1])
        audio_path = os.path.join(os.path.dirname(path), doc["audio"][0]["file"])
        self.assertTrue(audio_path.endswith(".flac") and os.path.getsize(audio_path) > 0, audio_path)
        # ... and the whole decision is in the recording.
        d = doc["decision"]
        self.assertEqual(d["source"], "hook")
        self.assertEqual(d["action"], "record")
        for k, v in OVERRIDES.items():
            self.assertEqual(d[k], v, k)
        self.assertNotIn("error", d)

    def test_reject_603(self):
        call = self.refused_call("reject", 603)
        self.assertEqual(len(self.hook.for_call(call.call_id)), 1)

    def test_slow_hook_on_error_record(self):
        t0 = time.monotonic()
        _, _, doc = self.recorded_call("slow")
        self.assertLess(time.monotonic() - t0, 30)
        d = doc["decision"]
        self.assertEqual((d["source"], d["action"]), ("on_error", "record"), d)
        self.assertIn("hooks.timeout_ms", d["error"])

    def test_garbage_on_error_record(self):
        _, _, doc = self.recorded_call("garbage")
        d = doc["decision"]
        self.assertEqual((d["source"], d["action"]), ("on_error", "record"), d)
        self.assertIn("bad answer", d["error"])
        self.assertNotIn("format", d)
        self.assertEqual([a["format"] for a in doc["audio"]], ["wav"], "configuration's format kept")

    def test_invalid_field_on_error_record(self):
        _, _, doc = self.recorded_call("bad-field")
        self.assertIn("retention_days", doc["decision"]["error"])
        self.assertIn("bad answer: retention_days: expected", self.daemon.stderr_text())  # logged with the reason


class HookDownRecordTest(HookCase):
    URL = closed_port_url()

    def test_down_on_error_record(self):
        _, _, doc = self.recorded_call("overrides")
        d = doc["decision"]
        self.assertEqual((d["source"], d["action"]), ("on_error", "record"), d)
        self.assertIn("request failed", d["error"])
        self.assertGreater(self.daemon.metrics().get("sgw_hook_requests_total", outcome="down"), 0)


class HookDownRejectTest(HookCase):
    URL = closed_port_url()
    ON_ERROR = "reject"

    def test_down_on_error_reject_480(self):
        self.refused_call("overrides", 480)


class HookPendingTest(HookCase):
    TIMEOUT_MS = 30000
    N = 50

    def test_options_answered_while_hooks_pending(self):
        with self.daemon.client("udp") as c:
            infos = {}
            for _ in range(self.N):
                call = Call(c)
                body = multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                                  ("application/rs-metadata+xml", metadata_xml(2))])
                data, info = call._req("INVITE", body=body,
                                       content_type='multipart/mixed;boundary="OSS-unique-boundary-42"',
                                       headers=siprec_headers() + [("X-Test-Hook", "hold")])
                infos[info["call_id"]] = info
                c.send_raw(data)
            self.assertTrue(wait_until(lambda: self.hook.held == self.N, 30),
                            f"{self.hook.held} hooks pending\n" + self.daemon.diagnostics())
            # Every INVITE waits for its hook; the SIP thread still answers.
            with self.daemon.client("udp") as probe:
                r = probe.options()
                self.assertEqual(r.status if r else None, 200, describe(r))
            finals = {}
            trying = set()
            self.hook.released.set()
            deadline = time.monotonic() + 30
            while len(finals) < self.N and time.monotonic() < deadline:
                m = c.recv(1.0)
                if m is None or not m.is_response:
                    continue
                cid = m.header("call-id")
                if m.status == 100:
                    trying.add(cid)
                elif m.status >= 200 and cid in infos and cid not in finals:
                    finals[cid] = m.status
                    c.send_raw(c.ack_for_failure(infos[cid], m))
            self.assertEqual(trying, set(infos))
            self.assertEqual(sorted(finals.values()), [603] * self.N)


if __name__ == "__main__":
    unittest.main()
