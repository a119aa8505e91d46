"""Codecs as real SRCs use them (issue 9 items 2 and 3, docs/sdp.md, docs/timeline.md):
every recordable codec offered is answered, a stream may switch between them at any packet, a
re-INVITE may change the codec (PCMA -> PCMU), and a packet in a static payload type that was never
negotiated is decoded anyway and counted. Each test sends a distinct tone per codec with
sgw-rtp-send (same SSRC, sequence numbers and RTP clock across the switch, as an SRC does) and
asserts with sgw-audio-probe that each tone is in the recording where it was sent, with no
silence at the switch."""

import json
import signal
import subprocess
import time
import unittest

from harness import Call, metadata_xml, multipart, sdp, siprec_headers
from test_recording import RTP_SEND, RecordingTestCase, first_packet_ms, probe

SWITCH_TOL_MS = 40  # a switch lands within two packets of where it was sent

PCMA_PCMU = dict(pts=[8, 0, 101], rtpmap={8: "PCMA/8000", 0: "PCMU/8000", 101: "telephone-event/8000"})
PCMA_ONLY = dict(pts=[8, 101], rtpmap={8: "PCMA/8000", 101: "telephone-event/8000"})
PCMU_ONLY = dict(pts=[0, 101], rtpmap={0: "PCMU/8000", 101: "telephone-event/8000"})


def one_stream(codecs, direction="sendonly"):
    s = dict(media="audio", port=40000, label="1", direction=direction)
    s.update(codecs)
    return [s]


class CodecSwitchTest(RecordingTestCase):

    def start(self, c, streams):
        call = Call(c)
        body = multipart([("application/sdp", sdp(streams)), ("application/rs-metadata+xml", metadata_xml(1))])
        r = call.invite(body, 'multipart/mixed;boundary="OSS-unique-boundary-42"', siprec_headers())
        self.assertStatus(r, 200, "INVITE")
        return call, call.answer.media[0]

    def run_sender(self, spec, duration_ms, on_started=None):
        """Runs sgw-rtp-send; returns the at_ms of each switch it reports."""
        p = subprocess.Popen([RTP_SEND, "--duration-ms", str(duration_ms), "--stream", spec],
                             stdout=subprocess.PIPE, text=True)
        try:
            if on_started:
                on_started(p)
            out, _ = p.communicate(timeout=duration_ms / 1000 + 30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, out)
        lines = [json.loads(l) for l in out.splitlines() if l.strip()]
        return [l["at_ms"] for l in lines if "switch" in l]

    def assertSegments(self, ch, want, what):
        """want: [(hz, start_ms, end_ms)] in recording time; consecutive tones touch (no silence
        at a switch beyond SWITCH_TOL_MS)."""
        segs = ch["segments"]
        self.assertEqual(len(segs), len(want), f"{what}: {segs}")
        for s, (hz, start, end) in zip(segs, want):
            self.assertAlmostEqual(s["hz"], hz, delta=15, msg=f"{what}: {segs}")
            self.assertAlmostEqual(s["start_ms"], start, delta=60, msg=f"{what}: {segs}")
            self.assertAlmostEqual(s["end_ms"], end, delta=60, msg=f"{what}: {segs}")
        for a, b in zip(segs, segs[1:]):
            self.assertLessEqual(b["start_ms"] - a["end_ms"], SWITCH_TOL_MS, f"{what}: silence at a switch: {segs}")

    def test_both_offered_codecs_answered_and_a_switch_between_them_recorded(self):
        # Offer PCMA and PCMU: both are answered; the SRC sends PCMA (440 Hz) for 1.5 s, then PCMU
        # (1000 Hz), then PT 9 (G722, 700 Hz) that was never negotiated: decoded, and counted.
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, m = self.start(c, one_stream(PCMA_PCMU))
            self.assertEqual(m.fmts[:2], ["8", "0"], call.final.body_text())
            self.assertIn("rtpmap:0 PCMU/8000", call.final.body_text())
            at = self.run_sender(f"to=127.0.0.1:{m.port},codec=PCMA,tone=440,"
                                 "switch=PCMU/1000@1500;G722/700@3000", 4000)
            self.assertEqual(at, [1500, 3000])
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        t0 = first_packet_ms(doc, 0)
        ch = probe(audio[0])["channel_stats"][0]
        self.assertSegments(ch, [(440, t0, t0 + 1500), (1000, t0 + 1500, t0 + 3000), (700, t0 + 3000, t0 + 4000)],
                            "PCMA, PCMU, un-negotiated G722")
        self.assertEqual(doc["streams"][0]["packets_received"], 200)
        integrity = doc["integrity"]["streams"][0]
        self.assertEqual(integrity["packets_unexpected_payload_type"], 50, integrity)  # the G722 second
        self.assertEqual(integrity["packets_undecodable"], 0, integrity)  # PT 9 is unambiguous: decoded
        self.assertTrue(any("not negotiated" in w for w in doc["warnings"]), doc["warnings"])

    def test_codec_change_in_reinvite_is_recorded(self):
        # Offer PCMA only; after a second of PCMA (440 Hz) a re-INVITE offers PCMU only, and once
        # it is answered the SRC switches to PCMU (1000 Hz) on the same SSRC.
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, m = self.start(c, one_stream(PCMA_ONLY))
            self.assertEqual(m.fmts[0], "8")

            def reinvite(sender):
                time.sleep(1.0)  # paces the scenario; nothing is asserted on it
                r = call.invite(sdp(one_stream(PCMU_ONLY), version=2), "application/sdp")
                self.assertStatus(r, 200, "re-INVITE PCMA -> PCMU")
                self.assertEqual(call.answer.media[0].fmts[0], "0", r.body_text())
                self.assertEqual(call.answer.media[0].port, m.port)
                sender.send_signal(signal.SIGUSR1)

            at = self.run_sender(f"to=127.0.0.1:{m.port},codec=PCMA,tone=440,switch=PCMU/1000@signal", 4000,
                                 reinvite)
            self.assertEqual(len(at), 1, "the sender did not switch")
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        t0 = first_packet_ms(doc, 0)
        ch = probe(audio[0])["channel_stats"][0]
        self.assertSegments(ch, [(440, t0, t0 + at[0]), (1000, t0 + at[0], t0 + 4000)], "PCMA then PCMU")
        st = doc["streams"][0]
        self.assertEqual(st["packets_received"], 200)
        self.assertEqual(doc["integrity"]["streams"][0]["packets_unexpected_payload_type"], 0, doc["integrity"])
        self.assertEqual(st["codec"], "PCMU/8000")
        self.assertTrue(any("codecs changed" in e["what"] for e in doc["events"]), doc["events"])


if __name__ == "__main__":
    unittest.main()
