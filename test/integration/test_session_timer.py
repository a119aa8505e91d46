"""Abandoned sessions end: RFC 4028 session timers (expiry without a refresh,
refreshes that keep the session, the gateway refreshing when the SRC cannot),
an INVITE whose 2xx is never ACKed (RFC 3261 timer H), and a session whose
every stream stays paused longer than media.max_paused_s. Each ends with our
BYE carrying a Reason header, and the recording states the cause.

Intervals are configured short (sip.min_session_expires_s: 2) so the tests
take seconds, not the RFC's minutes; every wait is bounded by a deadline."""

import glob
import json
import os
import time
import unittest

from harness import Call, metadata_xml, multipart, sdp, siprec_headers, wait_until
from test_recording import RecordingTestCase, streams_for

SE_S = 3  # Session-Expires of these tests (Min-SE lowered to 2 in CONFIG)


def wait_request(client, method, timeout):
    """The first request `method` from the gateway within timeout (others are answered 200)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = client.recv(min(0.5, max(0.01, deadline - time.monotonic())))
        if m is None or m.is_response:
            continue  # e.g. retransmissions of an un-ACKed 200
        if m.method == method:
            return m
        client.answer_ok(m)
    return None


def end_event(doc):
    ends = [e["what"] for e in doc["events"] if e["what"].startswith("end: ")]
    return ends[-1] if ends else ""


def recording_for_call_id(test, call_id: str, timeout=15.0) -> dict:
    """The recording JSON of the call with this Call-ID, once published (test.daemon's
    recordings dir). Tests share one daemon and finalisation is asynchronous: pick the
    recording of this test's call, not the first new file."""
    found = {}

    def look():
        for path in glob.glob(os.path.join(test.daemon.recordings_dir, "**", "*.json"), recursive=True):
            with open(path) as f:
                doc = json.load(f)
            if doc.get("recording_call_id") == call_id:
                found["doc"] = doc
                return True
        return False
    if not wait_until(look, timeout):
        test.fail(test._diag(f"no recording for Call-ID {call_id}"))
    return found["doc"]


class SessionTimerTest(RecordingTestCase):
    def recording_of(self, call, timeout=15.0):
        return recording_for_call_id(self, call.call_id, timeout)

    CONFIG = {"sip": {"min_session_expires_s": 2},
              "media": {"timeout_s": 60, "max_paused_s": 3}}

    def timer_headers(self, se, supported="replaces, timer, siprec"):
        hdrs = [h for h in siprec_headers() if h[0] != "Supported"]
        return hdrs + [("Supported", supported), ("Session-Expires", se)]

    def invite(self, c, headers, ack=True):
        call = Call(c)
        body = multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                          ("application/rs-metadata+xml", metadata_xml(2))])
        r = call.invite(body, 'multipart/mixed;boundary="OSS-unique-boundary-42"', headers, ack=ack)
        self.assertStatus(r, 200, "INVITE")
        return call, r

    def test_no_refresh_ends_the_session_before_it_expires(self):
        with self.daemon.client("udp") as c:
            call, r = self.invite(c, self.timer_headers(f"{SE_S};refresher=uac"))
            t0 = time.monotonic()
            # RFC 4028 §9: the UAC refreshes, so the 2xx requires timer.
            self.assertEqual(r.header("session-expires", "").replace(" ", ""), f"{SE_S};refresher=uac",
                             r.summary())
            self.assertIn("timer", r.header_tokens("require"), r.summary())
            ports = [m.port for m in call.answer.media]
            self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440"], 1000)
            # No refresh: BYE min(32, SE/3) = 1 s before the 3 s expire.
            bye = wait_request(c, "BYE", 8)
            elapsed = time.monotonic() - t0
            self.assertIsNotNone(bye, self._diag("no BYE after the session expired"))
            self.assertIn("cause=408", bye.header("reason", ""), bye.summary())
            self.assertIn("Session expired", bye.header("reason", ""), bye.summary())
            self.assertGreater(elapsed, SE_S - 1 - 0.5, "BYE came before the session could expire")
            self.assertLess(elapsed, SE_S + 0.5, "BYE came after the session expired")
            c.answer_ok(bye)
        doc = self.recording_of(call)
        self.assertIn("session expired", end_event(doc), doc["events"])
        self.assertTrue(doc["complete"], doc)  # everything the SRC sent is in the file
        self.assertEqual(doc["streams"][0]["packets_received"], 50, doc["streams"][0])
        self.wait_idle()

    def test_refreshes_keep_the_session(self):
        with self.daemon.client("udp") as c:
            call, r = self.invite(c, self.timer_headers(f"{SE_S};refresher=uac"))
            t0 = time.monotonic()
            # Refresh at half the interval, alternately re-INVITE (with the offer) and UPDATE.
            for i in range(4):
                time.sleep(SE_S / 2)
                if i % 2 == 0:
                    rr = call.invite(sdp(streams_for("PCMA", 2), version=2 + i), "application/sdp",
                                     [("Session-Expires", f"{SE_S};refresher=uac"), ("Supported", "timer")])
                else:
                    rr = call.request("UPDATE", headers=[("Session-Expires", f"{SE_S};refresher=uac"),
                                                         ("Supported", "timer")])
                self.assertStatus(rr, 200, f"refresh {i}")
                self.assertIn("refresher=uac", rr.header("session-expires", ""), rr.summary())
            # 6 s, twice the interval: still up, no BYE from the gateway.
            self.assertGreater(time.monotonic() - t0, 2 * SE_S - 0.5)
            self.assertStatus(call.bye(), 200, "BYE from the SRC")
        doc = self.recording_of(call)
        self.assertIn("BYE from SRC", end_event(doc), doc["events"])
        self.assertTrue(doc["complete"], doc)

    def test_gateway_refreshes_when_the_src_does_not_support_timer(self):
        with self.daemon.client("udp") as c:
            # A proxy added Session-Expires; the SRC itself does not support timer.
            call, r = self.invite(c, self.timer_headers(f"{SE_S}", supported="replaces, siprec"))
            self.assertEqual(r.header("session-expires", "").replace(" ", ""), f"{SE_S};refresher=uas",
                             r.summary())
            # RFC 4028 §9: Require: timer only when the SRC refreshes (it cannot here).
            self.assertNotIn("timer", r.header_tokens("require"), r.summary())
            t0 = time.monotonic()
            for n in range(2):
                upd = wait_request(c, "UPDATE", SE_S)
                self.assertIsNotNone(upd, self._diag(f"no session refresh {n} from the gateway"))
                # RFC 4028 §7.4: we are the UAC of the UPDATE and stay the refresher.
                self.assertIn("refresher=uac", upd.header("session-expires", ""), upd.summary())
                self.assertTrue(upd.header("contact"), upd.summary())
                self.assertEqual(upd.body, b"", upd.summary())
                c.answer_ok(upd)
            # Two refreshes at half the interval: about one interval later.
            self.assertAlmostEqual(time.monotonic() - t0, SE_S, delta=1.0)
            self.assertStatus(call.bye(), 200, "BYE from the SRC")
        self.wait_idle()

    def test_unacked_200_ends_the_session_after_timer_h(self):
        with self.daemon.client("udp") as c:
            call, r = self.invite(c, siprec_headers(), ack=False)
            t0 = time.monotonic()
            ports = [m.port for m in call.answer.media]
            self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440"], 1000)
            # RFC 3261 §13.3.1.4: 64*T1 = 32 s of 200 retransmissions, then BYE.
            bye = wait_request(c, "BYE", 45)
            self.assertIsNotNone(bye, self._diag("no BYE for the un-ACKed session"))
            self.assertGreater(time.monotonic() - t0, 31)
            self.assertIn("No ACK", bye.header("reason", ""), bye.summary())
            c.answer_ok(bye)
        doc = self.recording_of(call)
        self.assertTrue(end_event(doc).startswith("end: no ACK"), doc["events"])
        self.assertEqual(doc["streams"][0]["packets_received"], 50, doc["streams"][0])

    def test_session_paused_longer_than_max_paused_is_ended(self):
        with self.daemon.client("udp") as c:
            call, r = self.invite(c, siprec_headers())
            ports = [m.port for m in call.answer.media]
            self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440"], 500)
            r = call.invite(sdp(streams_for("PCMA", 2, "inactive"), version=2), "application/sdp")
            self.assertStatus(r, 200, "pause re-INVITE")
            t0 = time.monotonic()
            bye = wait_request(c, "BYE", 8)
            self.assertIsNotNone(bye, self._diag("no BYE after media.max_paused_s"))
            self.assertAlmostEqual(time.monotonic() - t0, 3, delta=0.7)
            self.assertIn("Paused too long", bye.header("reason", ""), bye.summary())
            c.answer_ok(bye)
        doc = self.recording_of(call)
        self.assertIn("paused too long", end_event(doc), doc["events"])
        self.assertTrue(any(e["what"] == "stream 1 paused" for e in doc["events"]), doc["events"])

    def test_resume_stops_the_max_paused_clock(self):
        with self.daemon.client("udp") as c:
            call, _ = self.invite(c, siprec_headers())
            self.assertStatus(call.invite(sdp(streams_for("PCMA", 2, "inactive"), version=2),
                                          "application/sdp"), 200, "pause")
            time.sleep(2)
            self.assertStatus(call.invite(sdp(streams_for("PCMA", 2, "sendonly"), version=3),
                                          "application/sdp"), 200, "resume")
            # Past the 3 s limit counted from the pause: no BYE, the session is up.
            self.assertIsNone(wait_request(c, "BYE", 2.5))
            self.assertStatus(call.bye(), 200, "BYE from the SRC")


if __name__ == "__main__":
    unittest.main()
