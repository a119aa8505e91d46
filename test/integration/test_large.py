"""Large SIPREC INVITEs: metadata far beyond one MTU (RFC 3261 §18.1.1 says UDP
should switch to TCP above 1300 bytes; SRCs do not always do so). On loopback
a UDP datagram may be up to 65507 bytes."""

import unittest

from harness import Call, DaemonTestCase, describe, siprec_body, siprec_headers, siprec_streams


class LargeInviteTest(DaemonTestCase):

    def large_call(self, transport: str, metadata_bytes: int):
        streams = siprec_streams(2)
        body, ctype = siprec_body(streams=streams, pad_to=metadata_bytes)
        self.assertGreaterEqual(len(body), metadata_bytes)
        with self.daemon.client(transport) as c:
            call = Call(c)
            r = call.invite(body, ctype, siprec_headers())
            self.assertStatus(r, 200, f"INVITE with {len(body)}-byte body over {transport}")
            self.check_answer(r, streams, f"large INVITE over {transport}")
            # A metadata update of the same size in the dialog.
            r2 = call.request("UPDATE", body, ctype)
            self.assertIsNotNone(r2, self._diag("no answer to a large UPDATE"))
            self.assertEqual(r2.status, 200, self._diag(describe(r2)))
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()

    def test_10k_udp(self):
        self.large_call("udp", 10 * 1024)

    def test_10k_tcp(self):
        self.large_call("tcp", 10 * 1024)

    def test_60k_udp(self):
        self.large_call("udp", 60 * 1024)

    def test_60k_tcp(self):
        self.large_call("tcp", 60 * 1024)



class OverLimitTest(DaemonTestCase):
    CONFIG = {"sip": {"max_message_bytes": 100000}}

    def test_over_max_message_bytes_tcp_rejected(self):
        # 200 KB over TCP exceeds sip.max_message_bytes (100000 here): the
        # daemon answers 4xx or closes the connection, and stays up.
        body, ctype = siprec_body(pad_to=200 * 1024)
        with self.daemon.client("tcp") as c:
            call = Call(c)
            try:
                r = call.invite(body, ctype, siprec_headers(), timeout=4)
            except OSError:
                r = None
            if r is not None:
                self.assertGreaterEqual(r.status, 400, self._diag(describe(r)))
        self.assertAlive("200 KB INVITE over TCP")


if __name__ == "__main__":
    unittest.main(verbosity=2)
