"""The call-control hook's overrides applied (issue 14, docs/integrations.md), end to end with
real peers: a real siprecd, a real HTTP hook (http.server on loopback) whose answer the test picks
per call with an X-Test-Hook header, real radosgw (the s3_server_start fixture) and real WebSocket
servers (Python `websockets`, the AudioHook server of test_stream.py).

HookS3OverridesTest: a hook answering retention_mode GOVERNANCE, retention_days 2 and tags; the
first gateway cannot reach S3 (connection refused), so the recording waits in the durable delivery
queue, carrying the overrides; the gateway is stopped and started again with the real endpoint, and
the objects in radosgw have mode GOVERNANCE, retain-until = start + 2 days and the tags (with
s3.tags), read back with an independent client (s3lite: HEAD and GetObjectTagging). A second call
whose hook answers {} gets the configuration's COMPLIANCE / 1 day / s3.tags; a third whose tags
would make 11 with s3.tags is a bad answer (on_error, the reason in the JSON and the log).

HookStreamTest: a hook answering a stream url opens that call's live audio there (caller's tone on
the external channel, agent's on internal, the hook's api_key in the handshake), overriding
stream.url; a call whose answer has no stream goes to stream.url; "stream": null streams nowhere;
without stream.url only calls whose hook names a stream are streamed.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import unittest
import warnings
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 µ-law decoding (stdlib up to Python 3.12)

from harness import LOOPBACK, Daemon, answered_call_recording, wait_until
from test_hooks import siprec_invite
from test_s3_delivery import S3Case
from test_stream import AGENT_HZ, CALLER_HZ, AudioHookServer, StreamTestBase


class Hook:
    """A hook on a free loopback port: answers[X-Test-Hook] as JSON (mode "{}" when absent)."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with hook.lock:
                    hook.requests.append(doc)
                mode = (doc.get("headers", {}).get("X-Test-Hook") or ["{}"])[0]
                body = json.dumps(hook.answers.get(mode, {})).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{LOOPBACK}:{self.httpd.server_address[1]}/invite"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def call_with_tones(test, d: Daemon, mode: str, duration_ms: int = 1500) -> tuple[str, dict]:
    """One answered call (hook mode `mode`): 440 Hz on stream 0 (the caller), 1000 Hz on stream 1
    (the agent), ended by BYE; returns the published recording (path, JSON)."""
    _, path, doc = answered_call_recording(test, d, lambda call: siprec_invite(call, mode), (CALLER_HZ, AGENT_HZ),
                                           duration_ms)
    return path, doc


def closed_port() -> int:
    s = socket.socket()
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


OVERRIDE = {"retention_mode": "GOVERNANCE", "retention_days": 2,
            "tags": {"team": "sales", "cost centre": "a/b+c=d é"}}
CONFIG_TAGS = {"source": "siprec-gateway", "team": "config"}


class HookS3OverridesTest(S3Case):
    def setUp(self):
        super().setUp()
        self.hook = Hook({"override": OVERRIDE, "{}": {},
                          "too-many": {"tags": {f"t{i}": "v" for i in range(9)}}})  # 11 with s3.tags
        self.addCleanup(self.hook.close)

    def config(self, bucket: str, endpoint: str | None = None) -> dict:
        cfg = self.s3_config(bucket, endpoint=endpoint, tags=CONFIG_TAGS)  # COMPLIANCE, 1 day
        cfg["hooks"] = {"invite_url": self.hook.url, "timeout_ms": 2000}
        return cfg

    def assert_object(self, bucket: str, obj: dict, start: datetime, mode: str, days: int, tags: dict):
        c = self.server.client
        h = c.head(bucket, obj["key"], obj["version_id"])
        self.assertEqual(h["x-amz-object-lock-mode"], mode, obj["key"])
        until = datetime.strptime(h["x-amz-object-lock-retain-until-date"][:19], "%Y-%m-%dT%H:%M:%S")
        self.assertEqual(until, (start + timedelta(days=days)).replace(tzinfo=None, microsecond=0), obj["key"])
        self.assertEqual(c.tagging(bucket, obj["key"], obj["version_id"]), tags, obj["key"])
        self.assertIn(f"retention={mode}@", obj["verified"])
        self.assertIn(f"tags={len(tags)}", obj["verified"])

    def test_retention_and_tags_from_the_hook_survive_a_restart_and_land_on_the_objects(self):
        bucket = self.new_bucket(lock=True)
        # S3 unreachable: the recording waits in the queue with the hook's overrides.
        down = self.config(bucket, endpoint=f"http://{LOOPBACK}:{closed_port()}")
        d = self.start_daemon(down)
        _, doc = call_with_tones(self, d, "override")
        self.assertEqual({k: doc["decision"][k] for k in OVERRIDE}, OVERRIDE)

        def tried():
            es = self.s3_entries(d)
            return len(es) == 1 and es[0]["attempts"] >= 1 and es[0]["state"] != "delivered"
        self.assertTrue(wait_until(tried, 30, 0.3), json.dumps(self.deliveries(d)) + d.diagnostics())
        [e] = self.s3_entries(d)
        self.assertEqual(e["overrides"], OVERRIDE, e)
        self.assertEqual(d.stop(), 0, d.diagnostics())

        # Restarted with the real endpoint: the entry read back from disk delivers with them.
        d2 = self.start_daemon(self.config(bucket), reuse=d)
        [e] = self.wait_states(d2, 1, "delivered", 40)
        self.assertEqual(e["recording_id"], doc["recording_id"])
        start = datetime.strptime(doc["start_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        want_tags = {**CONFIG_TAGS, **OVERRIDE["tags"]}
        for o in e["objects"]:
            self.assert_object(bucket, o, start, "GOVERNANCE", 2, want_tags)

        # A call whose hook answers {}: the configuration's lock and tags.
        _, doc2 = call_with_tones(self, d2, "{}", 500)
        es = self.wait_states(d2, 2, "delivered", 40)
        [e2] = [x for x in es if x["recording_id"] == doc2["recording_id"]]
        self.assertNotIn("overrides", e2)
        start2 = datetime.strptime(doc2["start_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        for o in e2["objects"]:
            self.assert_object(bucket, o, start2, "COMPLIANCE", 1, CONFIG_TAGS)
        self.assert_delivered_once(bucket, es)

        # 9 tags from the hook + 2 configured > S3's 10: a bad answer, on_error (record) with the reason.
        _, doc3 = call_with_tones(self, d2, "too-many", 300)
        self.assertEqual(doc3["decision"]["source"], "on_error", doc3["decision"])
        self.assertIn("tags: 11 tags with s3.tags (2); S3 takes at most 10", doc3["decision"]["error"])
        self.assertIn("failed (bad_answer): bad answer: tags: 11 tags", d2.stderr_text())


class HookStreamTest(StreamTestBase):
    def setUp(self):
        super().setUp()
        self.per_call = AudioHookServer()
        self.configured = AudioHookServer()
        self.servers += [self.per_call, self.configured]
        self.hook = Hook({
            "stream": {"stream": {"url": self.per_call.url + "?token=t0k", "api_key": "call-key",
                                  "organization_id": "org-call"}},
            "null": {"stream": None},
            "{}": {},
        })
        self.addCleanup(self.hook.close)

    def frames(self, server: AudioHookServer) -> list[bytes]:
        return [m for _, k, m in server.sessions[0]["messages"] if k == "audio"]

    def assert_streamed_here(self, server: AudioHookServer, doc: dict):
        self.assertTrue(wait_until(lambda: server.session_count() == 1 and server.sessions[0]["closed"], 15, 0.1),
                        self.diag(f"one closed session expected, got {server.session_count()}"))
        opened = server.sessions[0]["messages"][0][2]
        self.assertEqual(opened["parameters"]["conversationId"], doc["conversation_id"])
        pcm = audioop.ulaw2lin(b"".join(self.frames(server)), 2)
        samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
        self.assert_tones(samples[0::2], samples[1::2], doc["duration_ms"])

    def test_hook_stream_overrides_the_configured_one_and_null_means_none(self):
        d = self.start_daemon({"stream": {"url": self.configured.url, "api_key": "config-key"},
                               "hooks": {"invite_url": self.hook.url, "timeout_ms": 2000}})
        # The hook's url: that call's audio goes there, with the hook's api_key and organization.
        _, doc = call_with_tones(self, d, "stream", 2000)
        self.assert_streamed_here(self.per_call, doc)
        headers = self.per_call.sessions[0]["headers"]
        self.assertEqual(headers.get("X-API-KEY"), "call-key")
        self.assertEqual(headers.get("Audiohook-Organization-Id"), "org-call")
        self.assertEqual(self.per_call.sessions[0]["path"], "/audiohook?token=t0k")
        self.assertEqual(doc["live_stream"]["url"], self.per_call.url, doc["live_stream"])  # no token
        self.assertEqual(doc["decision"]["stream"], {"url": self.per_call.url, "organization_id": "org-call"})
        self.assertNotIn("call-key", json.dumps(doc))
        self.assertNotIn("t0k", json.dumps(doc))
        self.assertEqual(self.configured.session_count(), 0)
        # No stream in the answer: stream.url.
        _, doc = call_with_tones(self, d, "{}", 1500)
        self.assert_streamed_here(self.configured, doc)
        self.assertEqual(self.configured.sessions[0]["headers"].get("X-API-KEY"), "config-key")
        self.assertEqual(doc["live_stream"]["url"], self.configured.url)
        # "stream": null: not streamed at all.
        _, doc = call_with_tones(self, d, "null", 1000)
        self.assertNotIn("live_stream", doc)
        self.assertIsNone(doc["decision"]["stream"])
        self.assertEqual((self.per_call.session_count(), self.configured.session_count()), (1, 1))

    def test_without_stream_url_only_calls_the_hook_streams(self):
        d = self.start_daemon({"hooks": {"invite_url": self.hook.url, "timeout_ms": 2000}})
        _, doc = call_with_tones(self, d, "{}", 1000)
        self.assertNotIn("live_stream", doc)
        _, doc = call_with_tones(self, d, "stream", 2000)
        self.assert_streamed_here(self.per_call, doc)
        self.assertEqual(self.configured.session_count(), 0)


if __name__ == "__main__":
    unittest.main()
