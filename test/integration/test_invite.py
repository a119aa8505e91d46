"""Initial INVITEs: the SRS answer (RFC 7866 §8.1), and every rejection path."""

import json
import time
import unittest

from harness import (Call, DaemonTestCase, describe, metadata_xml, multipart, recording_for_call, sdp,
                     siprec_body, siprec_headers, siprec_streams, wait_until)


class BasicCallTest(DaemonTestCase):

    def siprec_call(self, transport: str, *, metadata_first: bool = False,
                    require_siprec: bool = True):
        d = self.daemon
        before = d.metrics().get("sgw_invites_total", code="200")
        streams = siprec_streams(2)
        body, ctype = siprec_body(streams=streams, metadata_first=metadata_first)
        with d.client(transport) as c:
            call = Call(c)
            r = call.invite(body, ctype, siprec_headers(require_siprec))
            self.assertStatus(r, 200, f"SIPREC INVITE over {transport}")
            self.check_answer(r, streams, f"INVITE over {transport}")
            contact = r.header("contact") or ""
            self.assertIn("+sip.srs", contact, self._diag(f"Contact lacks +sip.srs:\n{describe(r)}"))
            self.assertIsNotNone(r.to_tag, describe(r))
            # While the call is up it is counted.
            self.assertTrue(wait_until(lambda: d.metrics().get("sgw_active_sessions") >= 1, 3),
                            self._diag("sgw_active_sessions did not count the call"))
            bye = call.bye()
            self.assertStatus(bye, 200, f"BYE over {transport}")
        self.wait_idle()
        after = d.metrics().get("sgw_invites_total", code="200")
        self.assertGreaterEqual(after - before, 1,
                                self._diag('sgw_invites_total{code="200"} did not count the INVITE'))

    def test_siprec_call_udp(self):
        self.siprec_call("udp")

    def test_siprec_call_tcp(self):
        self.siprec_call("tcp")

    def test_sessions_endpoint_lists_calls_in_progress(self):
        d = self.daemon
        streams = siprec_streams(2)
        body, ctype = siprec_body(streams=streams)
        with d.client("udp") as c:
            call = Call(c)
            r = call.invite(body, ctype, siprec_headers(True))
            self.assertStatus(r, 200, "SIPREC INVITE")
            ans = self.check_answer(r, streams, "INVITE")
            status, text, _ = d.http("/sessions")
            self.assertEqual(status, 200, text)
            mine = [s for s in json.loads(text) if s["call_id"] == call.call_id]
            self.assertEqual(len(mine), 1, text)
            self.assertIn(mine[0]["state"], ("answering", "established"), text)
            self.assertEqual([st["port"] for st in mine[0]["streams"]], [m.port for m in ans.media], text)
            self.assertTrue(mine[0]["recording_id"], text)
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()
        status, text, _ = d.http("/sessions")
        self.assertEqual(status, 200, text)
        self.assertFalse([s for s in json.loads(text) if s["call_id"] == call.call_id], text)

    def test_metadata_part_first(self):
        self.siprec_call("udp", metadata_first=True)

    def test_without_require_siprec(self):
        self.siprec_call("udp", require_siprec=False)

    def test_sdp_only_cisco_style(self):
        # SDP-only recording INVITE (no metadata part), as Cisco CUBE sends
        # before metadata is configured: Contact +sip.src, two sendonly streams.
        streams = siprec_streams(2)
        with self.daemon.client("udp") as c:
            call = Call(c)
            r = call.invite(sdp(streams), "application/sdp",
                            [("Require", "siprec"), ("Supported", "timer, siprec"),
                             ("User-Agent", "Cisco-SIPGateway/IOS-17.6")])
            self.assertStatus(r, 200, "SDP-only INVITE")
            self.check_answer(r, streams, "SDP-only INVITE")
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    def test_single_stream_mixed_recording(self):
        streams = siprec_streams(1)
        body, ctype = siprec_body(streams=streams)
        with self.daemon.client("udp") as c:
            call = Call(c)
            r = call.invite(body, ctype, siprec_headers())
            self.assertStatus(r, 200, "one-stream INVITE")
            self.check_answer(r, streams, "one-stream INVITE")
            self.assertStatus(call.bye(), 200, "BYE")

    def test_mixed_recordable_and_video_rejects_only_video(self):
        # RFC 3264 §6: a stream we will not record is answered with port 0.
        streams = siprec_streams(2) + [dict(media="video", port=40100, pts=[96],
                                            rtpmap={96: "H264/90000"}, label="3",
                                            direction="sendonly", rejected=True)]
        body, ctype = siprec_body(streams=streams)
        with self.daemon.client("udp") as c:
            call = Call(c)
            r = call.invite(body, ctype, siprec_headers())
            self.assertStatus(r, 200, "audio+video INVITE")
            self.check_answer(r, streams, "audio+video INVITE")
            self.assertStatus(call.bye(), 200, "BYE")

    def test_distinct_ports_per_stream_and_call(self):
        ports = []
        calls = []
        with self.daemon.client("udp") as c:
            for _ in range(3):
                call = Call(c)
                body, ctype = siprec_body(2)
                r = call.invite(body, ctype, siprec_headers())
                self.assertStatus(r, 200, "INVITE")
                ports += [m.port for m in call.answer.media]
                calls.append(call)
            self.assertEqual(len(ports), len(set(ports)), f"RTP ports reused across streams: {ports}")
            for call in calls:
                self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    def test_bye_unknown_dialog_481(self):
        with self.daemon.client("udp") as c:
            data, info = c.request("BYE", to_tag="nonexistent-dialog")
            final, _ = c.transact(data, info)
        self.assertStatus(final, 481, "BYE outside any dialog")


class RejectionTest(DaemonTestCase):

    def invite(self, body, ctype, headers=None, transport="udp"):
        with self.daemon.client(transport) as c:
            call = Call(c)
            r = call.invite(body, ctype, headers if headers is not None else siprec_headers())
            if r is not None and 200 <= r.status < 300:
                call.bye(timeout=2)  # unexpected acceptance: do not leave the session up
            return r

    def test_unknown_require_420(self):
        # RFC 3261 §8.2.2.3: 420 with Unsupported listing the unknown option.
        body, ctype = siprec_body()
        hdrs = [h for h in siprec_headers() if h[0] != "Require"] + [("Require", "siprec, x-frobnication")]
        before = self.daemon.metrics().get("sgw_invites_total", code="420")
        r = self.invite(body, ctype, hdrs)
        self.assertStatus(r, 420, "Require: x-frobnication")
        self.assertIn("x-frobnication", r.header_tokens("unsupported"), self._diag(describe(r)))
        self.assertNotIn("siprec", r.header_tokens("unsupported"), self._diag(describe(r)))
        self.assertEqual(self.daemon.metrics().get("sgw_invites_total", code="420") - before, 1)

    def check_488(self, streams, needle: str):
        body, ctype = siprec_body(streams=streams)
        r = self.invite(body, ctype)
        self.assertStatus(r, 488, f"unrecordable offer ({needle})")
        warning = " ".join(r.header_all("warning"))
        self.assertTrue(warning, self._diag(f"488 without Warning:\n{describe(r)}"))
        # RFC 3261 §20.43: warn-code SP warn-agent SP "warn-text".
        self.assertRegex(warning, r'^\d{3} \S+ "', describe(r))
        self.assertIn(needle.lower(), warning.lower(), self._diag(describe(r)))

    def test_video_only_488(self):
        self.check_488([dict(media="video", port=40000, pts=[96], rtpmap={96: "H264/90000"},
                             label="1", direction="sendonly")], "video")

    def test_g726_only_488(self):
        self.check_488([dict(media="audio", port=40000, pts=[2, 111],
                             rtpmap={2: "G726-32/8000", 111: "G726-32/8000"}, label=str(i + 1),
                             direction="sendonly") for i in range(2)], "G726")

    def test_srtp_only_when_disabled_488(self):
        streams = [dict(media="audio", port=40000, proto="RTP/SAVP", pts=[0],
                        rtpmap={0: "PCMU/8000"}, label="1", direction="sendonly",
                        extra=["a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                               "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"])]
        body, ctype = siprec_body(streams=streams)
        r = self.invite(body, ctype)
        self.assertIsNotNone(r, self._diag("no answer to an SRTP-only offer"))
        self.assertEqual(r.status, 488, self._diag(describe(r)))

    def check_400(self, body: bytes, ctype: str, what: str):
        r = self.invite(body, ctype)
        self.assertStatus(r, 400, what)
        self.assertTrue(r.reason.strip(), self._diag(f"400 without a reason phrase: {r.start_line}"))
        self.assertAlive(what)

    def test_multipart_boundary_missing_400(self):
        body, _ = siprec_body()
        self.check_400(body, "multipart/mixed", "multipart without boundary parameter")

    def test_multipart_wrong_boundary_400(self):
        body, _ = siprec_body(boundary="actual-boundary")
        self.check_400(body, 'multipart/mixed;boundary="declared-boundary"', "multipart, wrong boundary")

    def test_multipart_unterminated_records_with_metadata_error(self):
        # Policy (docs/sdp.md): a missing close delimiter is tolerated when the
        # SDP part is complete -- refusing would lose the call's audio. The cut
        # metadata document is kept raw and counted as a metadata error.
        body = (b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp().encode()
                + b"\r\n--b1\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording")
        before = self.daemon.metrics().get("sgw_metadata_errors_total")
        r = self.invite(body, "multipart/mixed;boundary=b1")
        self.assertStatus(r, 200, "unterminated multipart with a complete SDP part")
        self.assertEqual(self.daemon.metrics().get("sgw_metadata_errors_total") - before, 1)

    def test_sdp_without_m_lines_488(self):
        # Well-formed SDP offering no media: nothing to record (RFC 3264 §5),
        # so 488 with a Warning, not a syntax error.
        text = "v=0\r\no=SRC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        r = self.invite(text.encode(), "application/sdp")
        self.assertStatus(r, 488, "SDP without m= lines")
        self.assertIn("m=", " ".join(r.header_all("warning")), self._diag(describe(r)))

    def test_garbage_body_400(self):
        self.check_400(b"\x00\x01garbage\xff\xfe" * 40, "application/sdp", "garbage SDP")

    def test_multipart_garbage_400(self):
        self.check_400(b"this is not a multipart body at all\r\n",
                       "multipart/mixed;boundary=zzz", "multipart garbage")

    def test_malformed_xml_metadata_is_recorded_with_its_error(self):
        # Metadata never refuses a call (docs/architecture.md): broken XML with a
        # good SDP is answered 200, and the recording keeps the document verbatim
        # and states why it was not used.
        bad = "<recording><participant></recording>"
        before = self.daemon.metrics().get("sgw_metadata_errors_total")
        body = multipart([("application/sdp", sdp()), ("application/rs-metadata+xml", bad)])
        with self.daemon.client("udp") as c:
            call = Call(c)
            r = call.invite(body, 'multipart/mixed;boundary="OSS-unique-boundary-42"', siprec_headers())
            self.assertStatus(r, 200, "INVITE with malformed metadata XML")
            self.assertStatus(call.bye(), 200, "BYE")
        found = recording_for_call(self.daemon.recordings_dir, call.call_id)
        self.assertIsNotNone(found, self._diag(f"no recording for Call-ID {call.call_id}"))
        doc = found[1]
        self.assertEqual([m["xml"] for m in doc["metadata_xml"]], [bad], doc["metadata_xml"])
        errors = doc["metadata_errors"]
        self.assertEqual([e["code"] for e in errors], ["metadata.xml"], errors)
        self.assertTrue(errors[0]["message"] and errors[0]["received_at"], errors)
        self.assertIsNone(doc["metadata"], doc["metadata"])
        self.assertEqual(self.daemon.metrics().get("sgw_metadata_errors_total") - before, 1)
        self.assertAlive("malformed metadata XML")


class MaxSessionsTest(DaemonTestCase):
    CONFIG = {"sip": {"max_sessions": 1, "retry_after_s": 7}}

    def test_503_at_session_limit(self):
        d = self.daemon
        with d.client("udp") as c:
            first = Call(c)
            body, ctype = siprec_body()
            self.assertStatus(first.invite(body, ctype, siprec_headers()), 200, "first INVITE")

            second = Call(c)
            r = second.invite(body, ctype, siprec_headers())
            self.assertStatus(r, 503, "INVITE beyond sip.max_sessions=1")
            self.assertEqual((r.header("retry-after") or "").split(";")[0].strip(), "7",
                             self._diag(f"Retry-After must be sip.retry_after_s:\n{describe(r)}"))

            opt = c.options()
            self.assertStatus(opt, 503, "OPTIONS at the session limit")
            self.assertIsNotNone(opt.header("retry-after"), describe(opt))

            self.assertStatus(first.bye(), 200, "BYE of the first call")
        self.wait_idle()
        with d.client("udp") as c:
            self.assertStatus(c.options(), 200, "OPTIONS after the call ended")
            third = Call(c)
            body, ctype = siprec_body()
            self.assertStatus(third.invite(body, ctype, siprec_headers()), 200,
                              "INVITE after the call ended")
            self.assertStatus(third.bye(), 200, "BYE")
        self.assertGreaterEqual(d.metrics().get("sgw_invites_total", code="503"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
