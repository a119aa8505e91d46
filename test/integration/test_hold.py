"""Hold the RFC 2543 way (issue 9): a re-INVITE whose SDP says c=IN IP4 0.0.0.0
and carries no direction attribute, as BroadWorks and Metaswitch send it. It is
a hold, not "no media": the stream is paused (an event "stream N held", a gap
with cause "hold"), no media timeout while held even when media.timeout_s is
shorter than the hold, and the next offer with a real address resumes it. The
recording has the tone before, silence of the hold's exact length, the tone
after, and says complete: true."""

import time
import unittest

from harness import sdp
from test_recording import TOL_MS, RecordingTestCase, probe, streams_for


def held_streams(n=2):
    """BroadWorks style: no a=sendonly/inactive at all."""
    out = []
    for s in streams_for("PCMA", n):
        s = dict(s)
        s.pop("direction")
        out.append(s)
    return out


class HoldByZeroAddressTest(RecordingTestCase):
    CONFIG = {"media": {"timeout_s": 1}}  # shorter than the 3 s hold

    def test_hold_by_zero_address_is_silence_not_a_timeout(self):
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            sender = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440,pause=1500-4500",
                                f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000,pause=1500-4500"],
                               6000, background=True)
            time.sleep(1.5)
            held = sdp(held_streams(), origin_ip="0.0.0.0", version=2)
            self.assertIn("c=IN IP4 0.0.0.0", held)
            r = call.invite(held, "application/sdp")
            self.assertStatus(r, 200, "hold re-INVITE (c=0.0.0.0)")
            self.assertEqual([m.direction for m in call.answer.media], ["inactive", "inactive"],
                             r.summary())
            # 3 s on hold, three media timeouts long: the gateway must not BYE.
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                m = c.recv(max(0.01, deadline - time.monotonic()))
                if m is not None and not m.is_response:
                    self.assertNotEqual(m.method, "BYE", self._diag("gateway ended a held session: "
                                                                    + m.summary()))
            r = call.invite(sdp(streams_for("PCMA", 2), version=3), "application/sdp")
            self.assertStatus(r, 200, "resume re-INVITE")
            self.assertEqual([m.direction for m in call.answer.media], ["recvonly", "recvonly"])
            sender.wait(30)
            self.assertStatus(call.bye(), 200, "BYE from the SRC")
        doc, audio = self.wait_recording(before)
        self.assertTrue(doc["complete"], doc)
        events = [e["what"] for e in doc["events"]]
        self.assertIn("stream 1 held", events)
        self.assertIn("stream 1 resumed", events)
        self.assertFalse([e for e in events if "timeout" in e], events)
        p = probe(audio[0])
        for ch, hz in zip(p["channel_stats"], (440, 1000)):
            segs = ch["segments"]
            self.assertEqual(len(segs), 2, segs)
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15)
            self.assertAlmostEqual(segs[0]["end_ms"] - segs[0]["start_ms"], 1500, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["start_ms"] - segs[0]["end_ms"], 3000, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["end_ms"] - segs[1]["start_ms"], 1500, delta=TOL_MS, msg=segs)
        holds = [g for g in doc["gaps"] if g["stream_label"] == "1" and g["cause"] == "hold"]
        self.assertTrue(holds, doc["gaps"])


if __name__ == "__main__":
    unittest.main()
