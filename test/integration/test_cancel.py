"""CANCEL of a pending recording INVITE (RFC 3261 §9). sip.answer_delay_ms holds
the final answer back so the INVITE is still pending when the CANCEL arrives."""

import time
import unittest

from harness import (Call, DaemonTestCase, build_message, describe, recording_for_call,
                     siprec_body, siprec_headers)

DELAY_MS = 2000


class CancelTest(DaemonTestCase):
    CONFIG = {"sip": {"answer_delay_ms": DELAY_MS}}

    def cancel_pending(self, transport: str):
        d = self.daemon
        before = d.metrics().get("sgw_invites_total", code="487")
        with d.client(transport) as c:
            call = Call(c)
            body, ctype = siprec_body()
            data, info = call._req("INVITE", body=body, content_type=ctype, headers=siprec_headers())
            c.send_raw(data)
            # RFC 3261 §9.1: CANCEL after a provisional. The 100 itself is
            # checked in test_100_trying_*; here we go on without it.
            first = c.recv(0.5)
            if first is not None:
                self.assertTrue(first.is_response and 100 <= first.status < 200,
                                self._diag(f"expected a provisional first, got:\n{describe(first)}"))
            # CANCEL: same R-URI, Call-ID, From, To, top Via branch, CSeq number (§9.1).
            cancel = build_message(f"CANCEL {info['uri']} SIP/2.0", [
                ("Via", c.via(info["branch"])), ("Max-Forwards", "70"),
                ("From", f"<sip:src@{c.local[0]}>;tag={info['from_tag']}"),
                ("To", f"<sip:srs@{c.server[0]}>"), ("Call-ID", info["call_id"]),
                ("CSeq", f"{info['cseq']} CANCEL")])
            c.send_raw(cancel)
            got_cancel_200 = None
            invite_final = None
            deadline = time.monotonic() + DELAY_MS / 1000 + 4
            while time.monotonic() < deadline and (got_cancel_200 is None or invite_final is None):
                m = c.recv(0.5)
                if m is None or not m.is_response:
                    continue
                if m.cseq[1] == "CANCEL":
                    got_cancel_200 = m
                elif m.cseq[1] == "INVITE" and m.status >= 200:
                    invite_final = m
            self.assertStatus(got_cancel_200, 200, "CANCEL")
            self.assertStatus(invite_final, 487, "the cancelled INVITE")
            c.send_raw(c.ack_for_failure(info, invite_final))
            # The 487 is final: no 200 may follow after the answer delay.
            late = c.recv(DELAY_MS / 1000 + 0.5)
            self.assertTrue(late is None or late.status != 200 or late.cseq[1] != "INVITE",
                            self._diag(f"a 200 followed the 487:\n{describe(late)}"))
        self.wait_idle()
        self.assertEqual(d.metrics().get("sgw_invites_total", code="487") - before, 1,
                         self._diag('sgw_invites_total{code="487"} did not count the cancelled INVITE'))

    def test_cancel_udp(self):
        self.cancel_pending("udp")

    def test_cancel_tcp(self):
        self.cancel_pending("tcp")

    def test_cancel_without_matching_transaction_481(self):
        with self.daemon.client("udp") as c:
            data, info = c.request("CANCEL")
            final, _ = c.transact(data, info)
        self.assertStatus(final, 481, "CANCEL for no transaction")

    def check_100_trying(self, transport: str):
        # RFC 3261 §17.2.1: the INVITE server transaction MUST send 100 Trying
        # when the TU has not answered within 200 ms, on every transport.
        with self.daemon.client(transport) as c:
            call = Call(c)
            body, ctype = siprec_body()
            r = call.invite(body, ctype, siprec_headers(), timeout=DELAY_MS / 1000 + 5)
            self.assertStatus(r, 200, f"INVITE with answer delay over {transport}")
            self.assertTrue(any(p.status == 100 for p in call.provisionals),
                            self._diag(f"no 100 Trying over {transport} while the answer was delayed"))
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    def test_100_trying_udp(self):
        self.check_100_trying("udp")

    def test_100_trying_tcp(self):
        self.check_100_trying("tcp")

    def test_delayed_answer_still_completes(self):
        with self.daemon.client("udp") as c:
            call = Call(c)
            body, ctype = siprec_body()
            t0 = time.monotonic()
            r = call.invite(body, ctype, siprec_headers(), timeout=DELAY_MS / 1000 + 5)
            self.assertStatus(r, 200, "INVITE with answer delay")
            # Not a timing test: only that the delay was applied at all.
            self.assertGreaterEqual(time.monotonic() - t0, DELAY_MS / 1000 * 0.5)
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    def test_cancel_after_200_is_481_and_the_call_goes_on(self):
        # CANCEL after the 200 has no effect (RFC 3261 §9.2). The INVITE server
        # transaction ended with the 2xx (§17.2.1), so the CANCEL matches none:
        # 481 (§9.2, "SHOULD respond ... with a 481"). The dialog stays up, a BYE
        # ends it, and the recording is complete.
        with self.daemon.client("udp") as c:
            call = Call(c)
            body, ctype = siprec_body()
            r = call.invite(body, ctype, siprec_headers(), timeout=DELAY_MS / 1000 + 5)
            self.assertStatus(r, 200, "INVITE")
            info = call.last_invite_info
            cancel = build_message(f"CANCEL {info['uri']} SIP/2.0", [
                ("Via", c.via(info["branch"])), ("Max-Forwards", "70"),
                ("From", f"<sip:src@{c.local[0]}>;tag={info['from_tag']}"),
                ("To", f"<sip:srs@{c.server[0]}>"), ("Call-ID", info["call_id"]),
                ("CSeq", f"{info['cseq']} CANCEL")])
            c.send_raw(cancel)
            m = c.recv(2.0)
            self.assertStatus(m, 481, "CANCEL after the 200")
            self.assertEqual(m.cseq, (info["cseq"], "CANCEL"), self._diag(describe(m)))
            self.assertStatus(call.bye(), 200, "BYE after a late CANCEL")
        self.wait_idle()
        found = recording_for_call(self.daemon.recordings_dir, call.call_id)
        self.assertIsNotNone(found, self._diag("no recording after a late CANCEL"))
        self.assertTrue(found[1]["complete"], found[1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
