"""RFC behaviour of requests other than the plain INVITE/ACK/BYE flow:

* OPTIONS pings (RFC 3261 §11) and Require: siprec on requests other than
  INVITE (§8.2.2.3: an option tag we implement is not a reason to refuse;
  one we do not implement gets 420 with Unsupported);
* glare (RFC 3261 §14.2, RFC 3311 §5.2): an offer that arrives while our own
  offer (in the 2xx to an offerless re-INVITE) still waits for its answer in
  the ACK gets 491, and the same offer after the ACK is accepted;
* UPDATE with metadata only (RFC 7866 §9.1, RFC 3311): 200 without a body, and
  the partial update is merged into the recording's metadata JSON.
"""

import glob
import json
import os
import unittest

from harness import (Call, DaemonTestCase, describe, metadata_xml, sdp, siprec_body,
                     siprec_headers, siprec_streams, wait_until)

SUPERVISOR = "sip:supervisor7@agents.example.com"


def supervisor_update(session_id="hVpd7YQgRW2nD22h7q60JQ=="):
    """RFC 7865 partial update: a supervisor joins the session."""
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>\n"
            "  <datamode>partial</datamode>\n"
            "  <participant participant_id=\"SUPERVISOR7participant0==\">\n"
            f"    <nameID aor=\"{SUPERVISOR}\"><name xml:lang=\"en\">Sam Supervisor</name></nameID>\n"
            "  </participant>\n"
            f"  <participantsessionassoc participant_id=\"SUPERVISOR7participant0==\" session_id=\"{session_id}\">\n"
            "    <associate-time>2024-05-06T10:21:00Z</associate-time>\n"
            "  </participantsessionassoc>\n"
            "</recording>\n")


class SipRequestTest(DaemonTestCase):

    def start_call(self, c):
        call = Call(c)
        streams = siprec_streams(2)
        body, ctype = siprec_body(streams=streams)
        r = call.invite(body, ctype, siprec_headers())
        self.assertStatus(r, 200, "INVITE")
        self.check_answer(r, streams, "INVITE")
        return call

    # -- OPTIONS and Require ----------------------------------------------------
    def test_options_ping_with_require_siprec_200(self):
        for transport in ("udp", "tcp"):
            with self.daemon.client(transport) as c:
                data, info = c.request("OPTIONS", headers=[("Require", "siprec"),
                                                           ("Accept", "application/sdp")])
                r, _ = c.transact(data, info)
                self.assertStatus(r, 200, f"OPTIONS with Require: siprec over {transport}")
                self.assertIn("siprec", r.header_tokens("supported"), describe(r))
                self.assertIn("invite", r.header_tokens("allow"), describe(r))

    def test_options_with_unknown_require_420(self):
        with self.daemon.client("udp") as c:
            data, info = c.request("OPTIONS", headers=[("Require", "siprec, foo-bar")])
            r, _ = c.transact(data, info)
            self.assertStatus(r, 420, "OPTIONS with Require: foo-bar")
            self.assertEqual(r.header_tokens("unsupported"), ["foo-bar"], describe(r))

    def test_bye_outside_dialog_with_require_siprec_481(self):
        # Require: siprec is understood, so the request is judged on its own: no such dialog.
        with self.daemon.client("udp") as c:
            data, info = c.request("BYE", to_tag="nosuchdialog", headers=[("Require", "siprec")])
            r, _ = c.transact(data, info)
            self.assertStatus(r, 481, "BYE outside any dialog with Require: siprec")

    def test_in_dialog_options_and_info_with_require_siprec_200(self):
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            for method in ("OPTIONS", "INFO"):
                r = call.request(method, headers=[("Require", "siprec")])
                self.assertStatus(r, 200, f"in-dialog {method} with Require: siprec")
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    # -- glare --------------------------------------------------------------------
    def test_offer_while_our_offer_is_pending_491(self):
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            # Offerless re-INVITE: the 2xx carries our offer; hold back the ACK (its answer).
            first = call.invite(b"", None, ack=False)
            self.assertStatus(first, 200, "offerless re-INVITE")
            self.assertEqual(first.content_type, "application/sdp", describe(first))
            # A second re-INVITE with an offer before that ACK: glare.
            r = call.invite(sdp(siprec_streams(2), version=3), "application/sdp")
            self.assertStatus(r, 491, "re-INVITE with an offer while ours is unanswered")
            # So is an UPDATE with an offer.
            r = call.request("UPDATE", sdp(siprec_streams(2), version=3), "application/sdp")
            self.assertStatus(r, 491, "UPDATE with an offer while ours is unanswered")
            # The ACK carries the answer; the same offer now goes through.
            call.ack(first)
            r = None
            for _ in range(20):  # the ACK may still be in flight (UDP): a 491 means retry
                r = call.invite(sdp(siprec_streams(2), version=4), "application/sdp")
                if r is None or r.status != 491:
                    break
            self.assertStatus(r, 200, "re-INVITE with an offer after the ACK")
            self.check_answer(r, siprec_streams(2), "re-INVITE after the ACK")
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    # -- UPDATE with metadata only --------------------------------------------------
    def recordings(self):
        return set(glob.glob(os.path.join(self.daemon.recordings_dir, "**", "*.json"), recursive=True))

    def test_update_with_metadata_only_is_merged(self):
        before = self.recordings()
        with self.daemon.client("tcp") as c:
            call = self.start_call(c)
            r = call.request("UPDATE", supervisor_update(), "application/rs-metadata+xml",
                             headers=[("Content-Disposition", "recording-session")])
            self.assertStatus(r, 200, "UPDATE with metadata only")
            self.assertEqual(r.body, b"", self._diag(f"200 to an offerless UPDATE has a body:\n{describe(r)}"))
            self.assertFalse(r.content_type, describe(r))
            self.assertStatus(call.bye(), 200, "BYE")
        # Earlier tests' recordings may be published meanwhile: pick this call's.
        def mine():
            for path in self.recordings() - before:
                with open(path) as f:
                    doc = json.load(f)
                if doc.get("recording_call_id") == call.call_id:
                    return doc
            return None
        doc = wait_until(mine, 15.0)
        self.assertIsNotNone(doc, self._diag("no recording was published for the call"))
        # The merged metadata: the INVITE's two participants and the one the UPDATE added.
        merged = json.dumps(doc["metadata"]["participants"])
        for aor in ("sip:+15551230001@customer.example.com", "sip:agent42@agents.example.com",
                    SUPERVISOR):
            self.assertIn(aor, merged, doc["metadata"])
        self.assertEqual(len(doc["metadata"]["participants"]), 3, doc["metadata"]["participants"])
        self.assertEqual(doc["metadata"]["data_mode"], "complete", doc["metadata"])
        self.assertEqual(len(doc["metadata_xml"]), 2, doc["metadata_xml"])
        self.assertFalse(doc.get("metadata_errors"), doc.get("metadata_errors"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
