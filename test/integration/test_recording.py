"""Recorded audio, end to end: the real siprecd, a SIPREC call from the Python
SIP client, real RTP from sgw-rtp-send (the gateway's own encoders, a distinct
tone per leg), and the finished recording decoded and measured with
sgw-audio-probe: which tone is on which channel, from when, for how long,
and where the silence is."""

import glob
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import (RTP_SEND, Call, Daemon, DaemonTestCase, describe, iso_ms, metadata_xml, multipart,
                     sdp, siprec_body, siprec_headers, siprec_streams, wait_until)
from harness import probe_audio
from harness import probe_audio as probe

TOL_MS = 20  # the alignment bound (docs/timeline.md): tones start/stop within 20 ms
# docs/spool.md: a kill -9 loses only the spool writer's buffer, flushed when its oldest byte is
# 500 ms old, checked on the media worker's 100 ms tick.
KILL9_LOSS_MS = 500 + 100
CODEC_RAMP_MS = {"G729": 25, "opus": 10}  # sound lost to a codec's start-up, not to the gateway

CODECS = {
    "PCMA": dict(pts=[8, 101], rtpmap={8: "PCMA/8000", 101: "telephone-event/8000"}),
    "PCMU": dict(pts=[0, 101], rtpmap={0: "PCMU/8000", 101: "telephone-event/8000"}),
    "G722": dict(pts=[9], rtpmap={9: "G722/8000"}),
    "G729": dict(pts=[18], rtpmap={18: "G729/8000"}, extra=["a=fmtp:18 annexb=no"]),
    "opus": dict(pts=[111], rtpmap={111: "opus/48000/2"}),
}


def streams_for(codec, n=2, direction="sendonly"):
    out = []
    for i in range(n):
        s = dict(media="audio", port=40000 + 2 * i, label=str(i + 1), direction=direction)
        s.update(CODECS[codec])
        out.append(s)
    return out


def first_packet_ms(doc, index):
    """When stream `index`'s first packet arrived, in ms from the session start."""
    return iso_ms(doc["streams"][index]["first_packet_time"]) - iso_ms(doc["start_time"])


def fine_probe(path, min_segment_ms=60):
    """The probe in 5 ms windows, for where a tone starts and how long it lasts: with its
    default 20 ms windows the quantisation alone would use up the ±20 ms bound. Frequency
    jumps do not split segments (a 5 ms window's peak is coarse)."""
    return probe_audio(path, min_segment_ms, window_ms=5, freq_tolerance_hz=0)


def sent_streams(stdout):
    """sgw-rtp-send's report: one dict per stream (packets, t0_unix_ms)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def tone_start_ms(doc, sent, index, offset_ms=0):
    """Where the audio of stream `index` must begin on the timeline, in ms from its start:
    when the sender's packet 0 was due (its own wall clock, sgw-rtp-send's t0_unix_ms) plus
    the stream's start= offset. The timeline anchors a stream on its least-delayed packet
    (docs/timeline.md, "Anchor"), so this holds however late the first packet itself came."""
    return sent[index]["t0_unix_ms"] + offset_ms - iso_ms(doc["start_time"])


class RecordingTestCase(DaemonTestCase):

    def recordings(self):
        return set(glob.glob(os.path.join(self.daemon.recordings_dir, "**", "*.json"), recursive=True))

    def wait_recording(self, before, timeout=15.0):
        found = []
        ok = wait_until(lambda: bool(found.extend(self.recordings() - before) or found), timeout)
        if not ok:
            self.fail(self._diag("no recording was published"))
        with open(found[0]) as f:
            doc = json.load(f)
        audio = [os.path.join(os.path.dirname(found[0]), a["file"]) for a in doc["audio"]]
        return doc, audio

    def start_call(self, c, codec="PCMA", md=None, n=2, ack=True):
        call = Call(c)
        offer = sdp(streams_for(codec, n))
        body = multipart([("application/sdp", offer),
                          ("application/rs-metadata+xml", md or metadata_xml(n))])
        t = time.monotonic()
        r = call.invite(body, 'multipart/mixed;boundary="OSS-unique-boundary-42"', siprec_headers(),
                        ack=ack)
        # INVITE -> 200 OK: bounds how much earlier than the timeline's first sample the
        # JSON's start_time may be taken (tone_start_ms).
        self.setup_ms = (time.monotonic() - t) * 1000
        self.assertStatus(r, 200, f"INVITE ({codec})")
        ports = [m.port for m in call.answer.media]
        self.assertTrue(all(p > 0 for p in ports), describe(r))
        return call, ports

    def send(self, specs, duration_ms, background=False):
        """Runs sgw-rtp-send; returns its report (sent_streams), or the running process
        (stdout piped: pass communicate()'s output to sent_streams) when background."""
        args = [RTP_SEND, "--duration-ms", str(duration_ms)]
        for s in specs:
            args += ["--stream", s]
        if background:
            return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        return sent_streams(subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True,
                                           timeout=duration_ms / 1000 + 30).stdout)

    def assertTone(self, ch, hz, start_ms, length_ms, what, tol_ms=TOL_MS, tol_hz=15):
        """The channel (from fine_probe) holds tone `hz` from start_ms (tone_start_ms) for
        length_ms, both within tol_ms: the documented ±20 ms, the probe's 5 ms windows
        included. The start may also be earlier by up to the call's setup time: the JSON's
        start_time is taken when the INVITE is processed, the timeline's origin when the
        session starts just before the 200 OK, so positions measured from start_time by the
        sender's clock are early by that much (reported: the two should be one instant)."""
        segs = ch["segments"]
        self.assertTrue(segs, f"{what}: no sound in the channel: {ch}")
        self.assertAlmostEqual(ch["dominant_hz"], hz, delta=tol_hz, msg=f"{what}: {ch}")
        self.assertLessEqual(segs[0]["start_ms"], start_ms + tol_ms, f"{what}: {segs}")
        self.assertGreaterEqual(segs[0]["start_ms"], start_ms - self.setup_ms - tol_ms,
                                f"{what}: setup {self.setup_ms:.1f} ms: {segs}")
        self.assertAlmostEqual(ch["active_ms"], length_ms, delta=tol_ms, msg=f"{what}: {segs}")


class TwoPartyTest(RecordingTestCase):

    def test_tones_land_on_the_right_channels_for_the_right_time(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            t0 = time.monotonic()
            # Customer (label 1) 440 Hz for 3 s; agent (label 2) 1000 Hz from 1.0 s to 3.0 s.
            sent = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440",
                              f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000,start=1000"], 3000)
            self.assertStatus(call.bye(), 200, "BYE")
            wall_ms = (time.monotonic() - t0) * 1000
        doc, audio = self.wait_recording(before)
        self.assertEqual(len(audio), 1)
        p = fine_probe(audio[0])
        self.assertEqual(p["channels"], 2)
        left, right = p["channel_stats"]
        self.assertTone(left, 440, tone_start_ms(doc, sent, 0), 3000, "caller (left)")
        self.assertTone(right, 1000, tone_start_ms(doc, sent, 1, 1000), 2000, "agent (right)")
        # The agent's tone starts 1000 ms after the caller's, as sent.
        self.assertAlmostEqual(right["segments"][0]["start_ms"] - left["segments"][0]["start_ms"], 1000,
                               delta=TOL_MS)
        # The audio lasts as long as the recording session did.
        self.assertAlmostEqual(p["duration_ms"], doc["duration_ms"], delta=2)
        self.assertGreaterEqual(doc["duration_ms"], 3000)
        self.assertLessEqual(doc["duration_ms"], wall_ms + 200)
        self.assertTrue(doc["complete"])
        self.assertEqual(doc["conversation_id"], "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
        roles = {x["aor"]: (x["role"], x["channel"]) for x in doc["participants"]}
        self.assertEqual(roles["sip:+15551230001@customer.example.com"], ("caller", 0), doc["participants"])
        self.assertEqual(roles["sip:agent42@agents.example.com"], ("agent", 1), doc["participants"])
        self.assertEqual([s["codec"] for s in doc["streams"]], ["PCMA/8000", "PCMA/8000"])
        self.assertEqual(doc["streams"][0]["packets_received"], 150)
        late = [g for g in doc["gaps"] if g["stream_label"] == "2" and g["cause"] == "late_start"]
        # The agent's late start is a gap as long as the time before its first packet.
        self.assertTrue(late, doc["gaps"])
        self.assertAlmostEqual(late[0]["length_ms"], right["segments"][0]["start_ms"], delta=TOL_MS, msg=doc["gaps"])

    def test_roles_come_from_metadata_not_from_mline_order(self):
        # The agent sends the FIRST m-line; Genesys marks purposes in extension data.
        md = metadata_xml(2).replace(
            '<participant participant_id="srfBElmCRp2QB23b7Mpk0w==">',
            '<participant participant_id="srfBElmCRp2QB23b7Mpk0w=="><extensiondata '
            'xmlns:g="http://genesys.com/siprec"><g:purpose>customer</g:purpose></extensiondata>').replace(
            '<participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">',
            '<participant participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><extensiondata '
            'xmlns:g="http://genesys.com/siprec"><g:purpose>agent</g:purpose></extensiondata>')
        # Swap who sends which stream: customer sends label 2, agent label 1.
        a, b = "UAAMm5GRQKSCMVvLyl4r00w==", "UAAMm5GRQKSCMVvLyl4r01w=="
        md = md.replace(f"<send>{a}</send>", "<send>X</send>").replace(f"<send>{b}</send>", f"<send>{a}</send>")
        md = md.replace("<send>X</send>", f"<send>{b}</send>")
        md = md.replace(f"<recv>{a}</recv>", "<recv>X</recv>").replace(f"<recv>{b}</recv>", f"<recv>{a}</recv>")
        md = md.replace("<recv>X</recv>", f"<recv>{b}</recv>")
        before = self.recordings()
        with self.daemon.client("tcp") as c:
            call, ports = self.start_call(c, md=md)
            self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=1000",   # agent, m-line 1
                       f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=440"], 2000)  # customer, m-line 2
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        left, right = probe(audio[0])["channel_stats"]
        self.assertAlmostEqual(left["dominant_hz"], 440, delta=15, msg="caller must be left")
        self.assertAlmostEqual(right["dominant_hz"], 1000, delta=15, msg="agent must be right")

    def test_early_media_before_ack_is_recorded(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c, ack=False)
            base = self.daemon.metrics().get("sgw_rtp_packets_received_total")
            sender = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440",
                                f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000"], 2000, background=True)
            # The ACK goes once the gateway has packets of both legs (not after a fixed delay).
            self.assertTrue(wait_until(lambda: self.daemon.metrics().get("sgw_rtp_packets_received_total")
                                       >= base + 20, 10), self._diag("no early media arrived"))
            ack_ms = time.time() * 1000
            call.ack(call.final)
            sent = sent_streams(sender.communicate(timeout=30)[0])
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        left, right = fine_probe(audio[0])["channel_stats"]
        # Audio from the first packet, which arrived before the ACK.
        self.assertLess(iso_ms(doc["streams"][0]["first_packet_time"]), ack_ms)
        self.assertTone(left, 440, tone_start_ms(doc, sent, 0), 2000, "early media, left")
        self.assertTone(right, 1000, tone_start_ms(doc, sent, 1), 2000, "early media, right")
        self.assertEqual(doc["streams"][0]["packets_received"], 100)

    def test_hold_is_silence_of_the_exact_length(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            sender = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440,pause=1500-6500",
                                f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000,pause=1500-6500"],
                               7500, background=True)
            time.sleep(1.5)
            r = call.invite(sdp(streams_for("PCMA", 2, "inactive"), version=2), "application/sdp")
            self.assertStatus(r, 200, "pause re-INVITE")
            time.sleep(5.0)
            r = call.invite(sdp(streams_for("PCMA", 2, "sendonly"), version=3), "application/sdp")
            self.assertStatus(r, 200, "resume re-INVITE")
            sender.communicate(timeout=30)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        left = probe(audio[0])["channel_stats"][0]
        segs = left["segments"]
        self.assertEqual(len(segs), 2, segs)
        self.assertAlmostEqual(segs[0]["end_ms"] - segs[0]["start_ms"], 1500, delta=TOL_MS, msg=segs)
        silence = segs[1]["start_ms"] - segs[0]["end_ms"]
        self.assertAlmostEqual(silence, 5000, delta=TOL_MS, msg=segs)
        pauses = [g for g in doc["gaps"] if g["stream_label"] == "1" and g["cause"] in ("pause", "hold")]
        self.assertTrue(pauses, doc["gaps"])

    def test_loss_and_reordering_leave_duration_exact(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            sent = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440,loss=0.05,reorder=0.05,seed=7",
                       f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000,loss=0.05,reorder=0.05,seed=8"],
                      4000)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        # Every segment is listed (min 0): a lost packet leaves a 20 ms hole,
        # and whether the probe's 20 ms windows see the audio around an early
        # hole as one short segment or two depends on where the first packet
        # fell; the first active window must still be where the first packet is.
        p = fine_probe(audio[0], min_segment_ms=0)
        self.assertAlmostEqual(p["duration_ms"], doc["duration_ms"], delta=2)
        for i, (ch, hz) in enumerate(zip(p["channel_stats"], (440, 1000))):
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15)
            start = ch["segments"][0]["start_ms"]
            ref = tone_start_ms(doc, sent, i)
            self.assertLessEqual(start, ref + TOL_MS, ch["segments"][:3])
            self.assertGreaterEqual(start, ref - self.setup_ms - TOL_MS, (self.setup_ms, ch["segments"][:3]))
            self.assertAlmostEqual(ch["segments"][-1]["end_ms"], start + 4000, delta=60)
            st = doc["streams"][i]
            self.assertGreater(st["packets_lost"], 0, st)
            self.assertLess(st["packets_lost"], 30, st)
            self.assertEqual(st["packets_received"] + st["packets_lost"], 200, st)


class MoreRecordingTest(RecordingTestCase):

    def test_dtmf_is_an_event_not_audio(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440,dtmf=7@1000",
                       f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000"], 2000)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        self.assertEqual([(d["digit"], d["stream_label"]) for d in doc["dtmf"]], [("7", "1")], doc["dtmf"])
        d = doc["dtmf"][0]
        self.assertAlmostEqual(d["duration_ms"], 200, delta=TOL_MS)
        # The 200 ms of telephone-event packets carry no audio: a hole in the
        # tone, exactly where the event is.
        segs = probe(audio[0])["channel_stats"][0]["segments"]
        self.assertEqual(len(segs), 2, segs)
        self.assertAlmostEqual(d["start_ms"] - segs[0]["start_ms"], 1000, delta=TOL_MS)
        self.assertAlmostEqual(segs[0]["end_ms"], d["start_ms"], delta=TOL_MS)
        self.assertAlmostEqual(segs[1]["start_ms"] - segs[0]["end_ms"], 200, delta=TOL_MS)

    def test_three_streams_make_a_three_channel_file(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c, n=3)
            self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440",
                       f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000",
                       f"to=127.0.0.1:{ports[2]},codec=PCMA,tone=1500"], 1500)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        p = probe(audio[0])
        self.assertEqual(p["channels"], 3)
        self.assertEqual([round(ch["dominant_hz"] / 10) * 10 for ch in p["channel_stats"]], [440, 1000, 1500])

    def test_ssrc_change_mid_stream_keeps_the_timeline(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            sent = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440,ssrc_change_at=1000",
                       f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000"], 2000)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        self.assertEqual(len(doc["streams"][0]["ssrcs"]), 2, doc["streams"][0])
        left = fine_probe(audio[0])["channel_stats"][0]
        self.assertTone(left, 440, tone_start_ms(doc, sent, 0), 2000, "after an SSRC change")

    def test_hostile_conversation_id_cannot_escape_the_recordings_folder(self):
        before = self.recordings()
        hostile = "../../../../tmp/escape\\..\\x"
        with self.daemon.client("udp") as c:
            call = Call(c)
            hdrs = [h for h in siprec_headers() if h[0] != "X-GenesysConversationID"]
            hdrs.append(("X-GenesysConversationID", hostile))
            body, ctype = siprec_body()
            r = call.invite(body, ctype, hdrs)
            self.assertStatus(r, 200, "INVITE")
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        root = os.path.realpath(self.daemon.recordings_dir)
        for path in list(self.recordings() - before) + audio:
            self.assertTrue(os.path.realpath(path).startswith(root + os.sep), path)
        self.assertEqual(doc["conversation_id"], hostile)  # kept verbatim in the JSON


class MediaTimeoutTest(RecordingTestCase):
    CONFIG = {"media": {"timeout_s": 1}}

    def test_silent_session_is_ended_with_bye_and_finalised(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440"], 500)
            # Then nothing: after 1 s the gateway ends the dialog itself.
            bye = None
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and bye is None:
                m = c.recv(0.5)
                if m is not None and not m.is_response and m.start_line.startswith("BYE "):
                    bye = m
            self.assertIsNotNone(bye, self._diag("no BYE from the gateway after the media timeout"))
            self.assertIn("408", bye.header("reason", ""), bye.summary())
            c.answer_ok(bye)
        doc, audio = self.wait_recording(before)
        self.assertTrue(doc["complete"], doc)
        self.assertTrue(any("timeout" in e["what"] for e in doc["events"]), doc["events"])


class FlacFormatTest(RecordingTestCase):
    CONFIG = {"recording": {"format": "flac"}}

    def test_flac_recording(self):
        before = self.recordings()
        with self.daemon.client("tcp") as c:
            call, ports = self.start_call(c, codec="G722")
            self.send([f"to=127.0.0.1:{ports[0]},codec=G722,tone=440",
                       f"to=127.0.0.1:{ports[1]},codec=G722,tone=1000"], 1500)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        self.assertTrue(audio[0].endswith(".flac"), audio)
        self.assertEqual(doc["audio"][0]["format"], "flac")
        p = probe(audio[0])
        self.assertEqual((p["sample_rate"], p["channels"]), (16000, 2))
        self.assertAlmostEqual(p["channel_stats"][1]["dominant_hz"], 1000, delta=15)


class CodecTest(RecordingTestCase):
    """Each codec decodes to the tone that was sent, on the right channel."""

    def check_codec(self, codec, rate):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c, codec=codec)
            self.assertIn(codec.lower(), call.answer.text.lower())
            sent = self.send([f"to=127.0.0.1:{ports[0]},codec={codec},tone=440",
                       f"to=127.0.0.1:{ports[1]},codec={codec},tone=1000"], 2000)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        p = fine_probe(audio[0])
        self.assertEqual(p["sample_rate"], rate)
        left, right = p["channel_stats"]
        # G.729 from a cold encoder and decoder builds a tone up over its first frames: the
        # first ~25 ms decode below the silence threshold (measured, the same every run).
        ramp = CODEC_RAMP_MS.get(codec, 0)
        self.assertTone(left, 440, tone_start_ms(doc, sent, 0), 2000 - ramp, f"{codec} left")
        self.assertTone(right, 1000, tone_start_ms(doc, sent, 1), 2000 - ramp, f"{codec} right")

    def test_g722(self):
        self.check_codec("G722", 16000)

    def test_g729(self):
        self.check_codec("G729", 8000)

    def test_opus(self):
        self.check_codec("opus", 16000)

    def test_pcmu(self):
        self.check_codec("PCMU", 8000)


class CrashRecoveryTest(unittest.TestCase):
    """kill -9 mid-call, restart: the recording is finished from the spool,
    marked incomplete, missing at most what docs/spool.md allows a kill -9 to
    lose (the writer's buffer: 600 ms)."""

    def test_kill9_mid_call_then_restart(self):
        d = Daemon()
        d.start()
        try:
            with d.client("udp") as c:
                call = Call(c)
                r = call.invite(multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                                           ("application/rs-metadata+xml", metadata_xml(2))]),
                                'multipart/mixed;boundary="OSS-unique-boundary-42"', siprec_headers())
                self.assertEqual(r.status if r else None, 200, describe(r))
                ports = [m.port for m in call.answer.media]
                sender = subprocess.Popen([RTP_SEND, "--duration-ms", "6000",
                                           "--stream", f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440",
                                           "--stream", f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000"],
                                          stdout=subprocess.DEVNULL)
                # ~2 s of both legs at the gateway (a condition, not a fixed sleep), then the kill.
                self.assertTrue(wait_until(lambda: d.metrics().get("sgw_rtp_packets_received_total") >= 200,
                                           15), d.diagnostics())
                kill_ms = time.time() * 1000
                d.proc.send_signal(signal.SIGKILL)
                d.proc.wait(10)
                sender.kill()
                sender.wait(10)
            self.assertEqual(glob.glob(os.path.join(d.recordings_dir, "**", "*.json"), recursive=True), [])
            self.assertEqual(len(glob.glob(os.path.join(d.spool_dir, "*.spool"))), 1)
            # Restart on the same folders.
            d2 = Daemon()
            d2.recordings_dir, d2.spool_dir = d.recordings_dir, d.spool_dir
            d2.start()
            try:
                found = []
                ok = wait_until(lambda: bool(found.extend(glob.glob(os.path.join(
                    d.recordings_dir, "**", "*.json"), recursive=True)) or found), 15)
                self.assertTrue(ok, d2.diagnostics())
                with open(found[0]) as f:
                    doc = json.load(f)
                self.assertFalse(doc["complete"], doc)
                # The spool is removed after the recording is published: wait for it.
                self.assertTrue(wait_until(lambda: not glob.glob(os.path.join(d.spool_dir, "*.spool")), 15),
                                glob.glob(os.path.join(d.spool_dir, "*.spool")))
                audio = os.path.join(os.path.dirname(found[0]), doc["audio"][0]["file"])
                left, right = probe(audio)["channel_stats"]
                # What reached the gateway before the kill, by its own clock (first packet's
                # arrival) and ours (the kill): all of it but at most the writer's buffer.
                for i, (ch, hz) in enumerate(((left, 440), (right, 1000))):
                    received_ms = kill_ms - iso_ms(doc["streams"][i]["first_packet_time"])
                    self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15)
                    self.assertGreaterEqual(ch["active_ms"], received_ms - KILL9_LOSS_MS - TOL_MS,
                                            (received_ms, ch))
                    self.assertLessEqual(ch["active_ms"], received_ms + TOL_MS, (received_ms, ch))
            finally:
                self.assertEqual(d2.stop(), 0)
                d2.cleanup()
        finally:
            if d.alive():
                d.kill()
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
