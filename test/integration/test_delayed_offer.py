"""Delayed-offer INVITEs (issue 9 item 9): an INVITE with no SDP (no body, or
RFC 7865 metadata alone), as some SBCs send it. The gateway makes the offer in
its 200 OK (ports bound and spool durable before it answers, as for any call),
takes the SRC's answer from the ACK and records on it. Metadata may come in
the INVITE, in the ACK (multipart with the answer), or later. An ACK with no
usable answer ends the session: BYE with a Reason header, the recording says
complete: false with the cause, sgw_delayed_offer_failures_total counts it.

Each recorded call is checked on its audio (the SRC's tone on the stream's
channel) and its JSON."""

import os
import time
import unittest

from harness import Call, metadata_xml, multipart, recording_for_call, sdp, siprec_headers
from test_recording import RecordingTestCase, fine_probe, streams_for, tone_start_ms
from test_session_timer import end_event, wait_request

BOUNDARY = "OSS-unique-boundary-42"
MULTIPART = f'multipart/mixed;boundary="{BOUNDARY}"'
CUSTOMER = "sip:+15551230001@customer.example.com"
AGENT = "sip:agent42@agents.example.com"


class DelayedOfferTest(RecordingTestCase):

    def offerless_invite(self, c, body=b"", content_type=None):
        """INVITE without SDP; returns (call, our offer's m-lines). Not ACKed yet."""
        call = Call(c)
        self.t_invite = time.monotonic()
        r = call.invite(body, content_type, siprec_headers(), ack=False)
        self.assertStatus(r, 200, "delayed-offer INVITE")
        self.assertEqual(r.content_type, "application/sdp", r.summary())
        offer = call.answer  # the gateway's offer
        self.assertTrue(offer.media, r.summary())
        for m in offer.media:
            self.assertEqual(m.media, "audio", r.summary())
            self.assertGreater(m.port, 0, r.summary())
            self.assertEqual(m.direction, "recvonly", r.summary())  # RFC 7866: the SRS only receives
            self.assertIn("8 PCMA/8000", m.attr("rtpmap"), r.summary())
        return call, r, offer.media

    def ack(self, call, final, body=b"", content_type=None):
        data, _ = call._req("ACK", cseq=final.cseq[0], body=body, content_type=content_type)
        call.c.send_raw(data)
        # INVITE -> ACK: the bound on how much earlier start_time may be than the audio (assertTone).
        self.setup_ms = (time.monotonic() - self.t_invite) * 1000

    def record_two_tones(self, c, call, ports):
        sent = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440",
                          f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000"], 2000)
        self.assertStatus(call.bye(), 200, "BYE")
        found = recording_for_call(self.daemon.recordings_dir, call.call_id)
        self.assertIsNotNone(found, self._diag(f"no recording for Call-ID {call.call_id}"))
        doc = found[1]
        audio = [os.path.join(os.path.dirname(found[0]), a["file"]) for a in doc["audio"]]
        self.assertEqual(len(audio), 1, doc)
        p = fine_probe(audio[0])
        self.assertEqual(p["channels"], 2, p)
        left, right = p["channel_stats"]
        self.assertTone(left, 440, tone_start_ms(doc, sent, 0), 2000, "stream 0 (left)")
        self.assertTone(right, 1000, tone_start_ms(doc, sent, 1), 2000, "stream 1 (right)")
        self.assertTrue(doc["complete"], doc)
        self.assertEqual([s["codec"] for s in doc["streams"]], ["PCMA/8000", "PCMA/8000"], doc["streams"])
        events = [e["what"] for e in doc["events"]]
        self.assertIn("SDP answer in the ACK: 2 stream(s) to record", events)
        return doc

    def test_invite_without_body_offered_answered_in_ack_and_recorded(self):
        with self.daemon.client("udp") as c:
            call, r, offer = self.offerless_invite(c)
            # No metadata to name the streams: one per side of a two-party call, labels 1 and 2.
            self.assertEqual([m.label for m in offer], ["1", "2"], r.summary())
            self.ack(call, r, sdp(streams_for("PCMA", 2)), "application/sdp")
            doc = self.record_two_tones(c, call, [m.port for m in offer])
        self.assertEqual([s["label"] for s in doc["streams"]], ["1", "2"], doc["streams"])

    def test_metadata_only_invite_offers_the_metadata_stream_labels(self):
        md = metadata_xml(2).replace("<label>1</label>", "<label>cust</label>").replace(
            "<label>2</label>", "<label>agt</label>")
        with self.daemon.client("tcp") as c:
            call, r, offer = self.offerless_invite(c, md.encode(), "application/rs-metadata+xml")
            # The SRC's metadata names its streams by label: our offer uses those labels.
            self.assertEqual([m.label for m in offer], ["cust", "agt"], r.summary())
            answer = streams_for("PCMA", 2)
            for s, label in zip(answer, ("cust", "agt")):
                s["label"] = label
            self.ack(call, r, sdp(answer), "application/sdp")
            doc = self.record_two_tones(c, call, [m.port for m in offer])
        roles = {x["aor"]: x["channel"] for x in doc["participants"]}
        self.assertEqual(roles.get(CUSTOMER), 0, doc["participants"])
        self.assertEqual(roles.get(AGENT), 1, doc["participants"])

    def test_metadata_only_in_the_ack_is_kept(self):
        with self.daemon.client("udp") as c:
            call, r, offer = self.offerless_invite(c)
            body = multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                              ("application/rs-metadata+xml", metadata_xml(2))], BOUNDARY)
            self.ack(call, r, body, MULTIPART)
            doc = self.record_two_tones(c, call, [m.port for m in offer])
        self.assertIn("metadata received in the ACK (1 document(s))", [e["what"] for e in doc["events"]])
        self.assertEqual(len(doc["metadata_xml"]), 1, doc.get("metadata_xml"))
        roles = {x["aor"]: x["channel"] for x in doc["participants"]}
        self.assertEqual(roles.get(CUSTOMER), 0, doc["participants"])
        self.assertEqual(roles.get(AGENT), 1, doc["participants"])

    def assert_ended_incomplete(self, body, content_type, cause):
        before = self.daemon.metrics().get("sgw_delayed_offer_failures_total")
        with self.daemon.client("udp") as c:
            call, r, offer = self.offerless_invite(c)
            self.ack(call, r, body, content_type)
            bye = wait_request(c, "BYE", 5)
            self.assertIsNotNone(bye, self._diag("no BYE after an ACK without a usable answer"))
            self.assertIn("cause=488", bye.header("reason", ""), bye.summary())
            c.answer_ok(bye)
        found = recording_for_call(self.daemon.recordings_dir, call.call_id)
        self.assertIsNotNone(found, self._diag(f"no recording for Call-ID {call.call_id}"))
        doc = found[1]
        # The SRC was told 200 OK: the attempt is on record, and it does not claim to be complete.
        self.assertFalse(doc["complete"], doc)
        self.assertIn(cause, end_event(doc), doc["events"])
        self.assertEqual(self.daemon.metrics().get("sgw_delayed_offer_failures_total") - before, 1)

    def test_ack_without_answer_ends_the_session_incomplete(self):
        self.assert_ended_incomplete(b"", None, "delayed offer: no SDP answer in the ACK")

    def test_ack_with_unusable_answer_ends_the_session_incomplete(self):
        g726 = [dict(media="audio", port=40000 + 2 * i, pts=[2], rtpmap={2: "G726-32/8000"},
                     label=str(i + 1), direction="sendonly") for i in range(2)]
        self.assert_ended_incomplete(sdp(g726), "application/sdp",
                                     "delayed offer: unusable SDP answer in the ACK")

    def test_reinvite_before_the_ack_gets_491(self):
        # Our offer awaits its answer: a new offer from the SRC is glare (RFC 3261 §14.2).
        with self.daemon.client("udp") as c:
            call, r, offer = self.offerless_invite(c)
            r2 = call.invite(sdp(streams_for("PCMA", 2), version=2), "application/sdp", ack=False)
            self.assertStatus(r2, 491, "re-INVITE while our offer is unanswered")
            self.ack(call, r, sdp(streams_for("PCMA", 2)), "application/sdp")
            self.assertStatus(call.bye(), 200, "BYE")


if __name__ == "__main__":
    unittest.main()
