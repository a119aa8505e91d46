"""Mid-session changes: pause/resume (RFC 7866 §8.1.3), streams added and
removed, metadata updates by re-INVITE and UPDATE (RFC 7866 §9.1), session
timers (RFC 4028)."""

import unittest

from harness import (Call, DaemonTestCase, describe, metadata_xml, multipart, sdp,
                     siprec_body, siprec_headers, siprec_streams)

BOUNDARY = "OSS-unique-boundary-42"
CTYPE = f'multipart/mixed;boundary="{BOUNDARY}"'


class ReinviteTest(DaemonTestCase):

    def start_call(self, c, n=2, headers=None):
        call = Call(c)
        streams = siprec_streams(n)
        body, ctype = siprec_body(streams=streams)
        r = call.invite(body, ctype, (headers or []) + siprec_headers())
        self.assertStatus(r, 200, "initial INVITE")
        self.check_answer(r, streams, "initial INVITE")
        return call

    def reinvite(self, call, streams, version, with_metadata=True, what=""):
        offer = sdp(streams, version=version)
        if with_metadata:
            body = multipart([("application/sdp", offer),
                              ("application/rs-metadata+xml", metadata_xml(len(streams)))], BOUNDARY)
            r = call.invite(body, CTYPE)
        else:
            r = call.invite(offer, "application/sdp")
        self.assertStatus(r, 200, what)
        return self.check_answer(r, streams, what)

    def test_pause_and_resume(self):
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            ports = [m.port for m in call.answer.media]
            # Pause: RFC 7866 §8.1.3 -- the SRC sets the streams inactive.
            paused = self.reinvite(call, siprec_streams(2, "inactive"), 2, what="pause re-INVITE")
            self.assertEqual([m.direction for m in paused.media], ["inactive", "inactive"],
                             describe(call.final))
            # Resume: sendonly again -> recvonly.
            resumed = self.reinvite(call, siprec_streams(2, "sendonly"), 3, what="resume re-INVITE")
            self.assertEqual([m.direction for m in resumed.media], ["recvonly", "recvonly"])
            # The recording continues on the same ports (the SRC keeps sending there).
            self.assertEqual([m.port for m in resumed.media], ports,
                             self._diag(f"ports changed across pause/resume:\n{describe(call.final)}"))
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    def test_pause_one_stream_only(self):
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            streams = siprec_streams(2)
            streams[1]["direction"] = "inactive"
            ans = self.reinvite(call, streams, 2, with_metadata=False, what="pause stream 2")
            self.assertEqual([m.direction for m in ans.media], ["recvonly", "inactive"])
            self.assertStatus(call.bye(), 200, "BYE")

    def test_add_and_remove_stream(self):
        with self.daemon.client("tcp") as c:
            call = self.start_call(c)
            first_ports = [m.port for m in call.answer.media]
            three = siprec_streams(3)
            ans = self.reinvite(call, three, 2, what="re-INVITE adding stream 3")
            self.assertEqual([m.port for m in ans.media[:2]], first_ports,
                             self._diag("existing streams moved when a stream was added"))
            self.assertNotIn(ans.media[2].port, first_ports)
            # Remove stream 2: RFC 3264 §8.2 -- port 0 in the offer, m-line kept.
            removed = siprec_streams(3)
            removed[1]["port"] = 0
            ans = self.reinvite(call, removed, 3, what="re-INVITE removing stream 2")
            self.assertEqual(ans.media[1].port, 0)
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    def test_metadata_only_reinvite(self):
        # RFC 7866 §9.1: a re-INVITE carrying only metadata; the answer is the
        # current SDP (same m-lines, same ports).
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            before = call.answer
            r = call.invite(metadata_xml(2, datamode="partial"), "application/rs-metadata+xml")
            self.assertStatus(r, 200, "metadata-only re-INVITE")
            self.assertEqual(r.content_type, "application/sdp", self._diag(describe(r)))
            from harness import Sdp
            now = Sdp(r.body_text())
            self.assertEqual([(m.media, m.port, m.direction) for m in now.media],
                             [(m.media, m.port, m.direction) for m in before.media],
                             self._diag(describe(r)))
            self.assertStatus(call.bye(), 200, "BYE")

    def test_metadata_update_by_update(self):
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            r = call.request("UPDATE", metadata_xml(2, datamode="partial"), "application/rs-metadata+xml")
            self.assertStatus(r, 200, "UPDATE with metadata")
            r = call.request("INFO", b"", None)
            self.assertIsNotNone(r, self._diag("no answer to INFO"))
            self.assertLess(r.status, 500, self._diag(describe(r)))
            self.assertStatus(call.bye(), 200, "BYE")

    def test_reinvite_unknown_dialog_481(self):
        with self.daemon.client("udp") as c:
            call = Call(c)
            call.to_tag = "no-such-dialog"
            body, ctype = siprec_body()
            r = call.invite(body, ctype)
            self.assertStatus(r, 481, "re-INVITE outside a dialog")

    def test_session_timer_refresh(self):
        # RFC 4028 §9: the UAS echoes Session-Expires in the 2xx; a refresh
        # re-INVITE/UPDATE is answered the same way.
        timer = [("Session-Expires", "1800;refresher=uac"), ("Min-SE", "90")]
        with self.daemon.client("udp") as c:
            call = self.start_call(c, headers=timer)
            se = call.final.header("session-expires")
            self.assertIsNotNone(se, self._diag(f"2xx without Session-Expires:\n{describe(call.final)}"))
            self.assertEqual(int(se.split(";")[0]), 1800, describe(call.final))
            self.assertIn("refresher=uac", se.replace(" ", ""), describe(call.final))
            # Refresh by re-INVITE with the same SDP.
            r = call.invite(sdp(siprec_streams(2), version=2), "application/sdp",
                            [("Session-Expires", "1800;refresher=uac"), ("Supported", "timer")])
            self.assertStatus(r, 200, "refresh re-INVITE")
            self.assertIsNotNone(r.header("session-expires"), self._diag(describe(r)))
            # Refresh by UPDATE without a body.
            r = call.request("UPDATE", headers=[("Session-Expires", "1800;refresher=uac"),
                                                ("Supported", "timer")])
            self.assertStatus(r, 200, "refresh UPDATE")
            self.assertIsNotNone(r.header("session-expires"), self._diag(describe(r)))
            self.assertStatus(call.bye(), 200, "BYE")

    def test_session_expires_below_min_se_422(self):
        # RFC 4028 §8.1: Session-Expires below the UAS minimum (90 s floor) -> 422 + Min-SE.
        with self.daemon.client("udp") as c:
            call = Call(c)
            body, ctype = siprec_body()
            r = call.invite(body, ctype, siprec_headers() + [("Session-Expires", "30")])
            self.assertStatus(r, 422, "Session-Expires: 30")
            self.assertIsNotNone(r.header("min-se"), self._diag(describe(r)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
