"""Live audio: a lost WebSocket connection is retried with resumption where the protocol allows
(issue 14 item 3, docs/integrations.md "Lost connections").

A real WebSocket server (Python `websockets`, Debian python3-websockets) on a free loopback port
breaks the gateway's connection mid-call the way it is told: a TCP reset (SO_LINGER 0, no
WebSocket close), a WebSocket close frame with an error status, or a reset after which it stays
down (connections refused). The real siprecd streams the real siprec-src's call to it. Assertions
on what the server received on each connection (ids, seq, positions, continuedSessions, the
`discarded` run, the tones on their channels), on the recording JSON's `live_stream` report, the
metrics and the log, and on the recording itself, which the stream never changes.

Tones: siprec-src plays a file per leg whose tone changes 3 s in (caller 440 -> 660 Hz, agent
1000 -> 1500 Hz), so the audio of the new connection is shown to be the audio sent after the
reconnect, at the stream position that says so.
"""

from __future__ import annotations

import array
import json
import math
import os
import socket
import struct
import sys
import time
import unittest
import wave
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 µ-law decoding (stdlib up to Python 3.12)

# test_stream puts Debian's python3-websockets on the path when the interpreter lacks it.
from test_stream import AudioHookServer, StreamTestBase, audiohook_reply, position_ms, tone_power
import websockets

from harness import Daemon, wait_until

SWITCH_MS = 3000                  # where each leg's tone changes
CALLER_HZ = (440, 660)            # caller leg before / after the switch: the external channel
AGENT_HZ = (1000, 1500)           # agent leg: the internal channel
ALL_HZ = CALLER_HZ + AGENT_HZ
# Windows this close to the switch are not judged: the session clock starts at the 200 OK and
# siprec-src's first packet follows it by a few ms (more on a busy host).
SWITCH_GUARD = (SWITCH_MS - 200, SWITCH_MS + 800)


def write_two_tone_wav(path: str, before_hz: float, after_hz: float, seconds: float = 8.0):
    rate = 8000
    samples = array.array("h")
    for i in range(int(seconds * rate)):
        hz = before_hz if i < SWITCH_MS * rate // 1000 else after_hz
        samples.append(int(12000 * math.sin(2 * math.pi * hz * i / rate)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


class FlakyServer(AudioHookServer):
    """The server side of AudioHook (and of the plain mode) that breaks its connections as
    planned.

    plan: connection number (0-based) -> action, taken right after that connection's n-th audio
    frame arrived:
      ("reset", n)             TCP reset (SO_LINGER 0 then close): no WebSocket close at all
      ("close", n, status)     a WebSocket close frame with `status` (RFC 6455 §7.4)
      ("reset_and_stay_down", n)  a reset, and the listening socket closes: later connections
                               are refused for the rest of the test
    Each connection's record: headers, messages (monotonic arrival, kind, payload), accepted
    and dropped_at (monotonic), server_seq (the last seq it sent), closed."""

    def __init__(self, plan: dict):
        self.plan = plan
        super().__init__()

    async def _handler(self, ws, path=None):
        sess = {"headers": ws.request_headers, "messages": [], "closed": False,
                "accepted": time.monotonic(), "dropped_at": None, "server_seq": 0}
        with self.lock:
            action = self.plan.get(len(self.sessions))
            self.sessions.append(sess)
        frames = 0
        try:
            async for msg in ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    sess["messages"].append((now, "audio", msg))
                    frames += 1
                    if action is not None and frames == action[1]:
                        sess["dropped_at"] = time.monotonic()
                        if action[0] == "close":
                            await ws.close(code=action[2], reason="test: server error")
                        else:
                            raw = ws.transport.get_extra_info("socket")
                            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                            ws.transport.abort()
                            if action[0] == "reset_and_stay_down":
                                self.ws_server.close()
                        break
                    continue
                doc = json.loads(msg)
                sess["messages"].append((now, doc.get("type", "?"), doc))
                reply = audiohook_reply(doc, sess["server_seq"] + 1)
                if reply is not None:
                    sess["server_seq"] += 1
                    await ws.send(json.dumps(reply))
        except websockets.ConnectionClosed:
            pass
        finally:
            sess["closed"] = True


def kinds(sess: dict) -> list[str]:
    return [k for _, k, _ in sess["messages"]]


def texts(sess: dict) -> list[dict]:
    return [m for _, k, m in sess["messages"] if k != "audio"]


class ReconnectTestBase(StreamTestBase):
    def setUp(self):
        super().setUp()
        self.caller_wav = os.path.join(self.tmp, "caller.wav")
        self.agent_wav = os.path.join(self.tmp, "agent.wav")
        write_two_tone_wav(self.caller_wav, *CALLER_HZ)
        write_two_tone_wav(self.agent_wav, *AGENT_HZ)

    def call(self, d: Daemon, seconds: int):
        self.run_src(d, "--calls", "1", "--duration", str(seconds),
                     "--wav", self.caller_wav, "--wav-agent", self.agent_wav)

    def wait_sessions_closed(self, server: FlakyServer, n: int, timeout: float = 15):
        ok = wait_until(lambda: server.session_count() >= n and all(s["closed"] for s in server.sessions[:n]),
                        timeout, 0.1)
        self.assertTrue(ok, self.diag(f"{n} WebSocket connections expected, got {server.session_count()}"))

    def assert_windows(self, windows: list[tuple[float, list[int], list[int]]], min_after_ms: int, what: str):
        """windows: (stream or recording time in ms, external samples, internal samples) of 100 ms.
        Each sounding window away from the switch carries the caller's tone of its time on
        external and the agent's on internal, and nothing else; at least min_after_ms of them
        lie after the switch."""
        after = 0
        for t, ext, internal in windows:
            if t + 100 > SWITCH_GUARD[0] and t < SWITCH_GUARD[1]:
                continue
            k = 0 if t < SWITCH_MS else 1
            for name, ch, want in (("external", ext, CALLER_HZ[k]), ("internal", internal, AGENT_HZ[k])):
                powers = {hz: tone_power(ch, hz) for hz in ALL_HZ}
                if sum(powers.values()) < 1e5:
                    break  # silence: the first ms of the call, before siprec-src's first packet
                others = max(p for hz, p in powers.items() if hz != want)
                self.assertGreater(powers[want], 20 * others,
                                   f"{what}: {name} at {t:.0f} ms: {want} Hz expected, powers {powers}")
            else:
                if t >= SWITCH_GUARD[1]:
                    after += 100
        self.assertGreaterEqual(after, min_after_ms, f"{what}: audio after the tone switch")

    def stream_windows(self, sess: dict, start_ms: float, frame_bytes: int) -> list:
        """100 ms windows of contiguous audio frames of one connection, with their stream
        position: audio starts at start_ms; a `discarded` message moves the position on."""
        pos = start_ms
        run: list[tuple[float, bytes]] = []
        out = []
        for _, k, m in sess["messages"]:
            if k == "discarded":
                pos = position_ms(m["position"]) if "position" in m else m["start_ms"] + m["discarded_ms"]
                run = []
            elif k == "audio":
                self.assertEqual(len(m), frame_bytes)
                run.append((pos, m))
                pos += 20
                if len(run) == 5:
                    raw = b"".join(f for _, f in run)
                    pcm = audioop.ulaw2lin(raw, 2) if frame_bytes == 320 else raw
                    s = struct.unpack(f"<{len(pcm) // 2}h", pcm)
                    out.append((run[0][0], list(s[0::2]), list(s[1::2])))
                    run = []
        return out

    def recording_windows(self, path: str, doc: dict) -> list:
        wav = os.path.join(os.path.dirname(path), doc["audio"][0]["file"])
        with wave.open(wav, "rb") as w:
            self.assertEqual((w.getnchannels(), w.getsampwidth()), (2, 2), wav)
            rate = w.getframerate()
            s = struct.unpack(f"<{w.getnframes() * 2}h", w.readframes(w.getnframes()))
        step = rate // 10
        caller, agent = s[0::2], s[1::2]
        return [(i * 1000 / rate, list(caller[i:i + step]), list(agent[i:i + step]))
                for i in range(0, len(caller) - step, step)]

    def assert_recording_whole(self, path: str, doc: dict):
        """The recording does not depend on the stream: complete, every packet in it, and the
        tones where siprec-src sent them, sounding all through the call (no hole at the outage)."""
        self.assertTrue(doc["complete"], doc.get("warnings"))
        for st in doc["integrity"]["streams"]:
            self.assertEqual((st["packets_lost"], st["packets_late"]), (0, 0), st)
            self.assertEqual(st["packets_received"], st["packets_expected"], st)
        windows = self.recording_windows(path, doc)
        self.assert_windows(windows, doc["duration_ms"] - SWITCH_GUARD[1] - 300, "recording")
        judged = [w for w in windows if not (w[0] + 100 > SWITCH_GUARD[0] and w[0] < SWITCH_GUARD[1])]
        sounding = sum(1 for _, c, a in judged if tone_power(c, CALLER_HZ[0]) + tone_power(c, CALLER_HZ[1]) > 1e5)
        self.assertGreaterEqual(sounding, len(judged) - 3, "the caller sounds in every window but the first")


class TestAudioHookReconnect(ReconnectTestBase):
    def test_tcp_reset_mid_call(self):
        self.check_reconnect(("reset", 40), "no WebSocket close")

    def test_websocket_close_with_an_error_status(self):
        self.check_reconnect(("close", 40, 1011), "WebSocket status 1011")

    def check_reconnect(self, action: tuple, why: str):
        server = FlakyServer({0: action})
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url}})  # pings every 5 s: none on connection 0
        self.call(d, 6)
        path, doc = self.recording(d)
        self.wait_sessions_closed(server, 2)
        self.assertEqual(server.session_count(), 2, "one reconnect, one connection each time")
        s0, s1 = server.sessions

        # The retry waits the documented first backoff (1 s) and comes soon after it.
        gap = s1["accepted"] - s0["dropped_at"]
        self.assertGreaterEqual(gap, 0.9, "the first retry waits 1 s")
        self.assertLess(gap, 6.0, "the first retry follows the 1 s backoff (5 s slack for a busy host)")

        # Connection 0: one session from position 0; the server saw exactly its n frames.
        id0 = s0["headers"]["Audiohook-Session-Id"]
        open0 = texts(s0)[0]
        self.assertEqual((open0["type"], open0["id"], open0["seq"]), ("open", id0, 1))
        self.assertEqual(position_ms(open0["position"]), 0)
        n0 = kinds(s0).count("audio")
        self.assertEqual(n0, action[1])

        # Connection 1: a new AudioHook session continuing the first (open's continuedSessions),
        # seq from 1, serverseq from 0, every message under the new id.
        k1, t1 = kinds(s1), texts(s1)
        id1 = s1["headers"]["Audiohook-Session-Id"]
        open1 = t1[0]
        self.assertEqual(k1.count("open"), 1, k1[:10])
        self.assertEqual(k1[0], "open", k1[:5])
        self.assertNotEqual(id1, id0)
        self.assertEqual((open1["id"], open1["seq"], open1["serverseq"]), (id1, 1, 0))
        self.assertEqual([m["seq"] for m in t1], list(range(1, len(t1) + 1)), "seq counts up by one")
        self.assertEqual({m["id"] for m in t1}, {id1})
        # The session it continues, with the last seq each side sent in it (open and opened: the
        # connection broke before the first ping).
        self.assertEqual([m["type"] for m in texts(s0)], ["open"])
        self.assertEqual(open1["parameters"]["continuedSessions"],
                         [{"id": id0, "serverseq": s0["server_seq"], "clientseq": 1}])
        self.assertEqual(s0["server_seq"], 1)
        self.assertEqual(open1["parameters"]["conversationId"], open0["parameters"]["conversationId"])
        self.assertEqual(open1["parameters"]["participant"], open0["parameters"]["participant"])
        self.assertEqual(s1["headers"]["Audiohook-Correlation-Id"], s0["headers"]["Audiohook-Correlation-Id"])

        # Positions: the new session opens where the audio written to the old one ended (what the
        # server got, plus what the reset lost in flight: at most the small kernel buffer), then
        # says in one `discarded` - before any audio - how much was lost until it came back.
        p1 = position_ms(open1["position"])
        self.assertGreaterEqual(p1, n0 * 20)
        self.assertLessEqual(p1 - n0 * 20, 1100, "in flight: at most the 8 KiB (doubled) send buffer")
        first_audio = k1.index("audio")
        discarded = [m for m in t1 if m["type"] == "discarded"]
        self.assertEqual(len(discarded), 1, [m["type"] for m in t1])
        self.assertLess(k1.index("discarded"), first_audio, "the loss is told before the audio resumes")
        lost = position_ms(discarded[0]["parameters"]["discarded"])
        self.assertEqual(position_ms(discarded[0]["parameters"]["start"]), p1)
        self.assertEqual(position_ms(discarded[0]["position"]), p1 + lost)
        self.assertGreaterEqual(lost, 960, "at least the 1 s backoff is lost")
        self.assertLessEqual(lost, gap * 1000 + 500, "no more than the outage the server saw")
        n1 = k1.count("audio")
        self.assertEqual(k1[-1], "close", k1[-5:])
        self.assertEqual(position_ms(t1[-1]["position"]), p1 + lost + n1 * 20, "positions add up")

        print(f"\n{action[0]}: reconnected {gap:.2f} s after the drop; server got {n0} + {n1} frames; "
              f"new session opened at {p1:.0f} ms, {lost:.0f} ms discarded; report {doc['live_stream']}",
              file=sys.stderr)
        # The tones of the new connection are the audio sent after the reconnect, on their channels.
        self.assert_windows(self.stream_windows(s0, 0, 320), 0, "connection 0")
        self.assert_windows(self.stream_windows(s1, p1, 320), 1000, "connection 1")

        # The recording's report states it; a metric and a log line too.
        ls = doc["live_stream"]
        self.assertEqual((ls["connects"], ls["reconnects"], ls["connections_lost"], ls["state"]),
                         (2, 1, 1, "streaming"), ls)
        self.assertEqual(ls["outage_ms"], lost, "the discarded run is the outage the report states")
        self.assertEqual(ls["outage_ms"], ls["outage_frames"] * 20)
        self.assertEqual(ls["frames_dropped"], ls["outage_frames"], "nothing dropped for slowness")
        self.assertIn(why, ls["error"])
        m = d.metrics()
        self.assertEqual(m.get("sgw_stream_connections_lost_total"), 1)
        self.assertEqual(m.get("sgw_stream_reconnects_total"), 1)
        log = d.stderr_text()
        self.assertIn("live stream connection to", log)
        self.assertIn(why, log)
        self.assertIn("live stream reconnected", log)

        self.assert_recording_whole(path, doc)


class TestPlainReconnect(ReconnectTestBase):
    def test_start_again_then_the_audio_goes_on(self):
        server = FlakyServer({0: ("reset", 40)})
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url, "protocol": "plain"}})
        self.call(d, 5)
        path, doc = self.recording(d)
        self.wait_sessions_closed(server, 2)
        self.assertEqual(server.session_count(), 2)
        s0, s1 = server.sessions
        k0, k1 = kinds(s0), kinds(s1)
        self.assertEqual((k0[0], k1[0]), ("start", "start"))
        self.assertEqual(k1.count("start"), 1)
        start0, start1 = s0["messages"][0][2], s1["messages"][0][2]
        self.assertEqual((start0["connection"], start0["position_ms"]), (1, 0))
        self.assertEqual(start1["connection"], 2)
        self.assertEqual(start1["recording_id"], doc["recording_id"])
        self.assertEqual(start1["format"], start0["format"])
        n0 = k0.count("audio")
        p1 = start1["position_ms"]
        self.assertGreaterEqual(p1, n0 * 20)
        self.assertLessEqual(p1 - n0 * 20, 1100)
        disc = [m for _, k, m in s1["messages"] if k == "discarded"]
        self.assertEqual(len(disc), 1)
        self.assertLess(k1.index("discarded"), k1.index("audio"))
        self.assertEqual(disc[0]["start_ms"], p1)
        ls = doc["live_stream"]
        self.assertEqual(disc[0]["discarded_ms"], ls["outage_ms"])
        self.assertEqual((ls["protocol"], ls["connects"], ls["reconnects"], ls["connections_lost"]),
                         ("plain", 2, 1, 1), ls)
        self.assertEqual(k1[-1], "end", k1[-3:])
        self.assert_windows(self.stream_windows(s1, p1, 640), 800, "connection 1")
        self.assert_recording_whole(path, doc)


class TestServerStaysDown(ReconnectTestBase):
    def test_the_recording_is_whole_and_the_failure_stated(self):
        server = FlakyServer({0: ("reset_and_stay_down", 25)})
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url}, "recording": {"keep_spool": True}})
        self.call(d, 5)
        path, doc = self.recording(d)
        self.wait_sessions_closed(server, 1)
        self.assertEqual(server.session_count(), 1, "nothing could connect again")
        n0 = kinds(server.sessions[0]).count("audio")

        ls = doc["live_stream"]
        self.assertEqual((ls["connects"], ls["reconnects"], ls["connections_lost"], ls["state"]),
                         (1, 0, 1, "failed"), ls)
        self.assertGreaterEqual(ls["connect_failures"], 1, "retried (1 s, then 2 s) while the call lasted")
        self.assertTrue(ls["error"], ls)
        self.assertEqual(ls["frames_dropped"], ls["outage_frames"], ls)
        self.assertLessEqual(ls["frames_sent"] * 20, n0 * 20 + 1100)
        # Every frame up to the end of the call is either sent or stated as lost (but the last
        # ones, not yet due when the report was taken: stream.delay_ms and the streaming thread's
        # cadence, more on a busy host).
        self.assertGreaterEqual((ls["frames_sent"] + ls["frames_dropped"]) * 20, doc["duration_ms"] - 500, ls)
        m = d.metrics()
        self.assertEqual(m.get("sgw_stream_connections_lost_total"), 1)
        self.assertGreaterEqual(m.get("sgw_stream_connect_failures_total"), 1)
        self.assertGreater(m.get("sgw_stream_frames_dropped_total"), 0)
        log = d.stderr_text()
        self.assertIn("live stream connection to", log)
        self.assertIn("retrying in", log)

        # The recording: whole, and sample for sample what a gateway without streaming makes of
        # the same packets (the kept spool, finalised by a daemon with no stream configured).
        self.assert_recording_whole(path, doc)
        self.assert_same_as_unstreamed(d, path, doc)


if __name__ == "__main__":
    unittest.main()
