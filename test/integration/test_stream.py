"""Live audio over WebSocket (issue 14 item 3, docs/integrations.md "Live audio").

A real WebSocket server (Python `websockets`, Debian python3-websockets) plays the AudioHook
server side on a free loopback port: it answers open with opened, ping with pong, close with
closed, and keeps every message with its arrival time. The real siprecd streams each recording
of the real siprec-src to it. Assertions on what arrived: the tones of siprec-src's caller and
agent legs on the external and internal channels (decoded from the PCMU frames), the message
order and positions, paused/resumed following siprec-src's pause/resume, and - with a server that
stops reading - a recording that is exactly what the gateway records without streaming.
"""

from __future__ import annotations

import asyncio
import glob
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 µ-law decoding (stdlib up to Python 3.12)

try:
    import websockets
except ImportError:  # an interpreter outside Debian's (pyenv): use the Debian package python3-websockets
    sys.path.append("/usr/lib/python3/dist-packages")
    import websockets
import websockets.server

from harness import LOOPBACK, Daemon, probe_audio, wait_until

CALLER_HZ, AGENT_HZ = 440, 1000  # siprec-src's default tones (caller leg, agent leg)


def siprec_src_path() -> str:
    path = os.environ.get("SIPREC_SRC", "")
    if not path or not os.access(path, os.X_OK):
        raise AssertionError("SIPREC_SRC (path of siprec-src) is not set or not executable")
    return path


def tone_power(samples: list[int], hz: float, rate: int = 8000) -> float:
    """Goertzel power of `hz` in `samples`, normalised by the length."""
    if not samples:
        return 0.0
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / len(samples)


def make_ca(folder: str, name: str, san: str = "IP:127.0.0.1") -> tuple[str, str, str]:
    """A CA and a server certificate for `san` (127.0.0.1) signed by it (openssl CLI): (ca, cert, key)."""
    ca_key, ca = os.path.join(folder, f"{name}-ca.key"), os.path.join(folder, f"{name}-ca.pem")
    key, csr, cert = (os.path.join(folder, f"{name}.{x}") for x in ("key", "csr", "pem"))
    ext = os.path.join(folder, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", f"/CN={name} test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", ext)
    return ca, cert, key


class AudioHookServer:
    """The server side of AudioHook (and of the plain mode) on 127.0.0.1, in its own thread.

    stall_after_open: after "opened" the handler stops reading, so the gateway's socket fills up
    (small receive buffer, websockets' own queue of one message).
    disconnect_after_frames: after that many audio frames the server sends "disconnect" (reason
    "completed") and goes on reading and answering."""

    def __init__(self, stall_after_open: bool = False, tls: tuple[str, str] | None = None,
                 disconnect_after_frames: int | None = None):
        self.stall = stall_after_open
        self.disconnect_after = disconnect_after_frames
        self.ssl = None
        if tls is not None:  # (certificate, key): wss://
            import ssl
            self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl.load_cert_chain(*tls)
        self.sessions: list[dict] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop_event: asyncio.Event | None = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.stall:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
        sock.bind((LOOPBACK, 0))
        self.port = sock.getsockname()[1]
        self.sock = sock
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise AssertionError("WebSocket server did not start")

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{LOOPBACK}:{self.port}/audiohook"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self):
        self.stop_event = asyncio.Event()
        kwargs = {"max_queue": 1, "read_limit": 1024} if self.stall else {}
        async with websockets.server.serve(self._handler, sock=self.sock, ssl=self.ssl, **kwargs) as server:
            self.ws_server = server
            self.ready.set()
            await self.stop_event.wait()

    async def _handler(self, ws, path=None):
        sess = {"path": ws.path, "headers": ws.request_headers, "messages": [], "closed": False}
        with self.lock:
            self.sessions.append(sess)
        server_seq = 0
        try:
            async for msg in ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    sess["messages"].append((now, "audio", msg))
                    audio = sum(1 for _, k, _ in sess["messages"] if k == "audio")
                    if audio == self.disconnect_after:
                        server_seq += 1
                        await ws.send(json.dumps({"version": "2", "type": "disconnect", "seq": server_seq,
                                                  "clientseq": 0, "id": sess["headers"].get("Audiohook-Session-Id"),
                                                  "parameters": {"reason": "completed"}}))
                        sess["messages"].append((time.monotonic(), "sent-disconnect", None))
                    continue
                doc = json.loads(msg)
                sess["messages"].append((now, doc.get("type", "?"), doc))
                t = doc.get("type")
                reply = audiohook_reply(doc, server_seq + 1)
                if reply is not None:
                    server_seq += 1
                    await ws.send(json.dumps(reply))
                if t == "open" and self.stall:
                    ws.transport.pause_reading()  # nothing more leaves the kernel's buffer
                    await asyncio.sleep(3600)
        except websockets.ConnectionClosed:
            pass
        finally:
            sess["closed"] = True

    def stop(self):
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)

    def session_count(self) -> int:
        with self.lock:
            return len(self.sessions)


def audiohook_reply(doc: dict, seq: int) -> dict | None:
    """The AudioHook server's answer (with `seq`) to a client message: open -> opened,
    ping -> pong, close -> closed; None to anything else."""
    t = doc.get("type")
    if t == "open":
        reply = {"type": "opened", "parameters": {"startPaused": False, "media": doc["parameters"]["media"][:1]}}
    elif t == "ping":
        reply = {"type": "pong", "parameters": {}}
    elif t == "close":
        reply = {"type": "closed", "parameters": {}}
    else:
        return None
    reply.update({"version": "2", "id": doc.get("id"), "seq": seq,
                  "clientseq": doc.get("seq"), "position": doc.get("position", "PT0S")})
    return reply


def src_time(events: list[str], prefix: str, not_before: int = 0) -> int:
    """siprec-src's time (ms on its clock) of its first event starting with prefix at or after
    not_before ("<ms>ms <what>", docs/siprec-src.md "Output")."""
    for e in events:
        ms, _, what = e.partition("ms ")
        if what.startswith(prefix) and int(ms) >= not_before:
            return int(ms)
    raise AssertionError(f"no siprec-src event {prefix!r} at or after {not_before} ms: {events}")


def position_ms(text: str) -> float:
    assert text.startswith("PT") and text.endswith("S"), text
    return float(text[2:-1]) * 1000


class StreamTestBase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sgw-stream-")
        self.daemons: list[Daemon] = []
        self.servers: list[AudioHookServer] = []

    def tearDown(self):
        for d in self.daemons:
            if d.alive():
                d.stop()
            d.cleanup()
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def diag(self, msg: str) -> str:
        return msg + "".join("\n" + d.diagnostics(40) for d in self.daemons)

    def start_daemon(self, config: dict) -> Daemon:
        d = Daemon(config=config)
        self.daemons.append(d)
        d.start()
        return d

    def run_src(self, d: Daemon, *args: str, timeout: float = 60) -> dict:
        json_path = os.path.join(self.tmp, f"src-{len(os.listdir(self.tmp))}.json")
        argv = [siprec_src_path(), f"sip:{LOOPBACK}:{d.sip_port}", "--json", json_path, *args]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, self.diag(f"siprec-src failed: {p.stdout}\n{p.stderr}"))
        with open(json_path) as f:
            return json.load(f)

    def recording(self, d: Daemon, timeout: float = 20) -> tuple[str, dict]:
        found: list[tuple[str, dict]] = []

        def look():
            found.clear()
            for path in glob.glob(os.path.join(d.recordings_dir, "**", "*.json"), recursive=True):
                with open(path) as f:
                    found.append((path, json.load(f)))
            return len(found) == 1
        self.assertTrue(wait_until(look, timeout, 0.1), self.diag(f"one recording expected, got {found}"))
        return found[0]

    def assert_same_as_unstreamed(self, d: Daemon, path: str, doc: dict) -> str:
        """The streamed recording (path, doc) of daemon d, which kept its spool, is sample for
        sample what a gateway without streaming makes of the same packets: the kept spool,
        finalised by a second daemon that has no stream configured. Returns the audio file."""
        spools = glob.glob(os.path.join(d.spool_dir, "*.spool"))
        self.assertEqual(len(spools), 1, spools)
        plain = Daemon(config={})  # no stream configured
        self.daemons.append(plain)
        shutil.copy(spools[0], plain.spool_dir)
        plain.start()
        p2, doc2 = self.recording(plain)
        self.assertEqual(doc2["live_stream"], doc["live_stream"], "the same spool, the same report")
        wav1 = os.path.join(os.path.dirname(path), doc["audio"][0]["file"])
        wav2 = os.path.join(os.path.dirname(p2), doc2["audio"][0]["file"])
        with open(wav1, "rb") as f1, open(wav2, "rb") as f2:
            a1, a2 = f1.read(), f2.read()
        self.assertEqual(len(a1), len(a2))
        self.assertTrue(a1 == a2, "the streamed call's audio differs from the same packets recorded without streaming")
        return wav1

    def wait_closed(self, server: AudioHookServer, timeout: float = 15):
        ok = wait_until(lambda: server.session_count() >= 1 and server.sessions[0]["closed"], timeout, 0.1)
        self.assertTrue(ok, self.diag("the stream's WebSocket connection did not close"))


    def assert_tones(self, ext: list[int], internal: list[int], duration_ms: int):
        """The caller's 440 Hz on external and the agent's 1000 Hz on internal wherever a channel
        sounds (100 ms windows), and sounding for most of the call."""
        for name, ch, want, other in (("external", ext, CALLER_HZ, AGENT_HZ),
                                      ("internal", internal, AGENT_HZ, CALLER_HZ)):
            windows = [(i, tone_power(list(ch[i:i + 800]), want), tone_power(list(ch[i:i + 800]), other))
                       for i in range(0, len(ch) - 800, 800)]
            full = max((pw + po for _, pw, po in windows), default=0)
            sounding = 0
            for i, pw, po in windows:
                # Silence, or a window the tone only starts or ends in (a few ms of it: its abrupt
                # edge spreads over every frequency, so 440 and 1000 Hz can weigh alike there; a CI
                # run under ASan and load saw one). A whole window of the wrong tone is full power.
                if pw + po < max(1e5, full / 4):
                    continue
                self.assertGreater(pw, 20 * po, f"{name} window {i // 8} ms: {want} Hz expected")
                sounding += 1
            self.assertGreaterEqual(sounding * 100, duration_ms - 800, f"{name}: sounding windows")


class TestAudioHook(StreamTestBase):
    def test_tones_on_their_channels_in_order(self):
        server = AudioHookServer()
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url, "protocol": "audiohook",
                                          "organization_id": "org-1", "ping_interval_s": 1}})
        self.run_src(d, "--calls", "1", "--duration", "4")
        path, doc = self.recording(d)
        self.wait_closed(server)
        sess = server.sessions[0]
        msgs = sess["messages"]
        kinds = [k for _, k, _ in msgs]
        # Handshake and message order: open first, audio only after it, close last.
        self.assertEqual(sess["headers"].get("Audiohook-Organization-Id"), "org-1")
        self.assertTrue(sess["headers"].get("Audiohook-Session-Id"))
        self.assertEqual(kinds[0], "open", kinds[:5])
        self.assertEqual(kinds[-1], "close", kinds[-5:])
        opened = msgs[0][2]
        self.assertEqual(opened["parameters"]["media"][0],
                         {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000})
        self.assertEqual(opened["parameters"]["conversationId"], doc["conversation_id"])
        texts = [m for _, k, m in msgs if k != "audio"]
        self.assertEqual([m["seq"] for m in texts], list(range(1, len(texts) + 1)), "seq counts up by one")
        self.assertEqual({m["id"] for m in texts}, {sess["headers"]["Audiohook-Session-Id"]})
        self.assertIn("ping", kinds, "a ping each second")
        # Audio: 20 ms stereo PCMU frames, about as many as the call lasted.
        frames = [m for _, k, m in msgs if k == "audio"]
        self.assertTrue(all(len(f) == 320 for f in frames), {len(f) for f in frames})
        self.assertGreaterEqual(len(frames) * 20, doc["duration_ms"] - 200,
                                f"{len(frames)} frames for {doc['duration_ms']} ms")
        self.assertLessEqual(len(frames) * 20, doc["duration_ms"] + 100)
        close = msgs[-1][2]
        self.assertAlmostEqual(position_ms(close["position"]), len(frames) * 20, delta=1)
        # Tones: decode both channels.
        pcm = audioop.ulaw2lin(b"".join(frames), 2)
        samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
        self.assert_tones(samples[0::2], samples[1::2], doc["duration_ms"])
        # The recording reports the stream; the latency is printed (a benchmark figure, not asserted).
        ls = doc["live_stream"]
        self.assertEqual((ls["protocol"], ls["connects"], ls["frames_dropped"], ls["packets_dropped"]),
                         ("audiohook", 1, 0, 0), ls)
        self.assertGreater(ls["frames_sent"], 0)
        print(f"\nlive stream latency packet->frame written: p50 {ls['latency_p50_ms']} ms, "
              f"p99 {ls['latency_p99_ms']} ms, max {ls['latency_max_ms']} ms "
              f"(one call, busy 2-core CI host)", file=sys.stderr)
        m = d.metrics()
        self.assertGreaterEqual(m.get("sgw_stream_frames_sent_total"), len(frames))

    def test_a_server_disconnect_gets_a_close_and_no_reconnect(self):
        # AudioHook: "the client initiates a close transaction" when the server asks to end the
        # session (disconnect): a close with reason "disconnect", no audio after it, and no
        # second connection for the rest of the call. The recording is not affected.
        server = AudioHookServer(disconnect_after_frames=50)  # about 1 s into the call
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url, "protocol": "audiohook"}})
        self.run_src(d, "--calls", "1", "--duration", "4")
        path, doc = self.recording(d)
        self.wait_closed(server)
        self.assertEqual(server.session_count(), 1, "no reconnect after a disconnect")
        msgs = server.sessions[0]["messages"]
        kinds = [k for _, k, _ in msgs]
        self.assertIn("sent-disconnect", kinds)
        self.assertEqual(kinds[-1], "close", kinds[-5:])
        close = msgs[-1][2]
        self.assertEqual(close["parameters"]["reason"], "disconnect", close)
        frames = kinds.count("audio")
        # Frames written before the gateway read the disconnect may follow it (how many depends
        # on how far behind this server reads on a busy machine); the rest of the call is not
        # streamed: the disconnect came after 1 s of a 4 s call.
        self.assertLess(frames * 20, doc["duration_ms"] - 500,
                        f"{frames} frames streamed of a {doc['duration_ms']} ms call")
        self.assertAlmostEqual(position_ms(close["position"]), frames * 20, delta=1)
        ls = doc["live_stream"]
        self.assertEqual((ls["connects"], ls["reconnects"], ls["state"]), (1, 0, "closed"), ls)
        self.assertIn("disconnect (completed)", ls["error"], ls)
        self.assertEqual(ls["frames_sent"], frames, ls)
        self.assertTrue(doc["complete"], doc)
        self.assertGreaterEqual(doc["duration_ms"], 3500, doc)
        self.assertTrue(wait_until(lambda: "sent disconnect (completed)" in d.stderr_text(), 5, 0.1),
                        self.diag("the disconnect is logged"))

    def test_pause_and_resume_follow_the_src(self):
        server = AudioHookServer()
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url}})
        src = self.run_src(d, "--calls", "1", "--duration", "5", "--timeline", "pause@1.5s,resume@3s")
        _, doc = self.recording(d)
        self.wait_closed(server)
        msgs = server.sessions[0]["messages"]
        kinds = [k for _, k, _ in msgs]
        self.assertIn("paused", kinds)
        self.assertIn("resumed", kinds)
        ip, ir = kinds.index("paused"), kinds.index("resumed")
        self.assertLess(ip, ir)
        self.assertEqual(kinds.count("paused"), 1, kinds)
        before = kinds[:ip].count("audio")
        during = kinds[ip:ir].count("audio")
        after = kinds[ir:].count("audio")
        self.assertEqual(during, 0, "no audio while paused")
        # Frames follow the session's time (one per 20 ms from its start), the pause the gateway's
        # handling of the re-INVITEs: bounds from what siprec-src measured (its events, ms on its
        # clock), not from the timeline's planned 1.5 s, which a busy machine runs late. The
        # session starts between the INVITE sent and its 200 OK; the gateway paused between the
        # pause's re-INVITE and its 2xx and resumed between the resume's re-INVITE and its 2xx.
        ev = src["records"][0]["events"]
        invite, ok = src_time(ev, "INVITE to"), src_time(ev, "200 OK")
        pause, resume, stop = src_time(ev, "pause"), src_time(ev, "resume"), src_time(ev, "RTP stop")
        pause_ok = src_time(ev, "re-INVITE answered 2", pause)
        resume_ok = src_time(ev, "re-INVITE answered 2", pause_ok + 1)
        resume_sent = max(resume, pause_ok)  # re-INVITEs never overlap
        frame = 20  # ms; the pause takes effect at a frame boundary, +-2 ms for ms rounding
        self.assertGreaterEqual(before * 20, pause - ok - frame - 2, ev)
        self.assertLessEqual(before * 20, pause_ok - invite + frame + 2, ev)
        resumed = msgs[ir][2]
        discarded = position_ms(resumed["parameters"]["discarded"])
        self.assertGreaterEqual(discarded, resume_sent - pause_ok - frame - 2, ev)
        self.assertLessEqual(discarded, resume_ok - pause + frame + 2, ev)
        self.assertAlmostEqual(position_ms(resumed["position"]), before * 20, delta=1)
        # After the resume, audio until the end of the session (which outlasts siprec-src's RTP).
        self.assertGreaterEqual(after * 20, stop - resume_ok - frame - 2, ev)


class TestPlainAndTls(StreamTestBase):
    def test_plain_mode_over_verified_wss(self):
        ca, cert, key = make_ca(self.tmp, "good")
        server = AudioHookServer(tls=(cert, key))
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url + "?token=secret", "protocol": "plain", "ca_file": ca}})
        self.run_src(d, "--calls", "1", "--duration", "3")
        _, doc = self.recording(d)
        self.wait_closed(server)
        msgs = server.sessions[0]["messages"]
        kinds = [k for _, k, _ in msgs]
        self.assertEqual((kinds[0], kinds[-1]), ("start", "end"), kinds)
        start = msgs[0][2]
        self.assertEqual((start["recording_id"], start["conversation_id"]), (doc["recording_id"], doc["conversation_id"]))
        self.assertEqual(start["format"], {"encoding": "s16le", "rate": 8000, "channels": 2,
                                           "channel_names": ["external", "internal"], "frame_ms": 20})
        self.assertEqual(start["metadata"]["participants"][0]["aors"], doc["metadata"]["participants"][0]["aors"])
        frames = [m for _, k, m in msgs if k == "audio"]
        self.assertTrue(all(len(f) == 640 for f in frames), {len(f) for f in frames})
        raw = b"".join(frames)
        samples = struct.unpack(f"<{len(raw) // 2}h", raw)
        self.assert_tones(samples[0::2], samples[1::2], doc["duration_ms"])
        ls = doc["live_stream"]
        self.assertEqual((ls["protocol"], ls["connects"], ls["url"]), ("plain", 1, server.url), ls)

    def test_wss_with_an_untrusted_certificate_streams_nothing_and_records_everything(self):
        _, cert, key = make_ca(self.tmp, "server")
        other_ca, _, _ = make_ca(self.tmp, "other")
        self.check_refused(cert, key, other_ca)

    def test_wss_with_a_certificate_for_another_host_streams_nothing(self):
        ca, cert, key = make_ca(self.tmp, "elsewhere", san="DNS:ai.example.com,IP:127.0.0.2")
        self.check_refused(cert, key, ca)

    def check_refused(self, cert: str, key: str, ca: str):
        server = AudioHookServer(tls=(cert, key))
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url, "ca_file": ca}})
        self.run_src(d, "--calls", "1", "--duration", "2")
        _, doc = self.recording(d)
        ls = doc["live_stream"]
        self.assertEqual(ls["connects"], 0, ls)
        self.assertGreaterEqual(ls["connect_failures"], 1, ls)
        self.assertTrue(ls["error"], ls)
        self.assertEqual(server.session_count(), 0, "no WebSocket session past a failed verification")
        self.assertTrue(doc["complete"], doc["warnings"])
        self.assertGreater(d.metrics().get("sgw_stream_connect_failures_total"), 0)


class TestSlowServer(StreamTestBase):
    def test_a_server_that_stops_reading_changes_no_sample(self):
        server = AudioHookServer(stall_after_open=True)
        self.servers.append(server)
        d = self.start_daemon({"stream": {"url": server.url, "max_queued_frames": 10},
                               "recording": {"keep_spool": True}})
        src = self.run_src(d, "--calls", "1", "--duration", "6")
        path, doc = self.recording(d)
        ls = doc["live_stream"]
        self.assertGreater(ls["frames_dropped"], 0, f"the stalled server must cost frames: {ls}")
        self.assertGreater(d.metrics().get("sgw_stream_frames_dropped_total"), 0)
        # The recording is whole: every packet siprec-src sent is in it, nothing lost or dropped.
        self.assertTrue(doc["complete"], doc.get("warnings"))
        # Every packet siprec-src sent (its own count: a loaded machine may send a few less than
        # 6 s / 20 ms per leg) was received.
        streams = doc["integrity"]["streams"]
        self.assertEqual(sum(st["packets_received"] for st in streams), src["rtp_packets_sent"], (src, streams))
        for st in streams:
            self.assertGreater(st["packets_received"], 0, st)
            self.assertEqual((st["packets_received"], st["packets_lost"], st["packets_late"]),
                             (st["packets_expected"], 0, 0), st)
            self.assertEqual(st.get("packets_kernel_dropped") or 0, 0, st)
        wav1 = self.assert_same_as_unstreamed(d, path, doc)
        tones = probe_audio(wav1)
        self.assertTrue(tones, "the recording has audio")


if __name__ == "__main__":
    unittest.main()
