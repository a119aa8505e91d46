"""OPTIONS (RFC 3261 §11) and the HTTP control endpoints of a running siprecd."""

import unittest

from harness import DaemonTestCase, describe

ALLOWED = {"invite", "ack", "bye", "cancel", "options", "update", "info"}
ACCEPTED = {"application/sdp", "multipart/mixed", "application/rs-metadata+xml"}


class OptionsTest(DaemonTestCase):

    def check_options(self, transport: str):
        with self.daemon.client(transport) as c:
            r = c.options()
        self.assertStatus(r, 200, f"OPTIONS over {transport}")
        allow = set(r.header_tokens("allow"))
        self.assertTrue(ALLOWED <= allow, self._diag(f"Allow lacks {ALLOWED - allow}:\n{describe(r)}"))
        accept = set(r.header_tokens("accept"))
        self.assertTrue(ACCEPTED <= accept, self._diag(f"Accept lacks {ACCEPTED - accept}:\n{describe(r)}"))
        self.assertIn("siprec", r.header_tokens("supported"), self._diag(describe(r)))
        # RFC 3261 §8.2.6.2: the response echoes the request's identifiers.
        self.assertIsNotNone(r.to_tag, describe(r))

    def test_options_udp(self):
        self.check_options("udp")

    def test_options_tcp(self):
        self.check_options("tcp")

    def test_options_several_on_one_tcp_connection(self):
        with self.daemon.client("tcp") as c:
            for i in range(5):
                r = c.options()
                self.assertStatus(r, 200, f"OPTIONS #{i} on one TCP connection")

    def test_options_out_of_dialog_with_to_tag_gets_481_or_200(self):
        # An OPTIONS carrying a To tag we never issued (RFC 3261 §12.2.2): a
        # UAS answers 481; many answer it as out-of-dialog. Never 5xx or silence.
        with self.daemon.client("udp") as c:
            data, info = c.request("OPTIONS", to_tag="unknown-tag-1234")
            final, _ = c.transact(data, info)
        self.assertIsNotNone(final, self._diag("no answer to OPTIONS with a stale To tag"))
        self.assertIn(final.status, (200, 481), self._diag(describe(final)))

    def test_unknown_method_405_or_501(self):
        # RFC 3261 §8.2.1: unsupported method -> 405 (with Allow) or 501.
        with self.daemon.client("udp") as c:
            data, info = c.request("FROBNICATE")
            final, _ = c.transact(data, info)
        self.assertIsNotNone(final, self._diag("no answer to an unknown method"))
        self.assertIn(final.status, (405, 501), self._diag(describe(final)))

    def test_register_is_not_a_registrar(self):
        with self.daemon.client("udp") as c:
            data, info = c.request("REGISTER", uri=f"sip:{c.server[0]}:{c.server[1]}")
            final, _ = c.transact(data, info)
        self.assertIsNotNone(final, self._diag("no answer to REGISTER"))
        self.assertGreaterEqual(final.status, 400, self._diag(describe(final)))


class HttpTest(DaemonTestCase):

    def test_healthz(self):
        status, body, _ = self.daemon.http("/healthz")
        self.assertEqual(status, 200, body)

    def test_readyz(self):
        status, body, _ = self.daemon.http("/readyz")
        self.assertEqual(status, 200, body)

    def test_metrics_exports_the_contract_series(self):
        m = self.daemon.metrics()
        for name in ("sgw_active_sessions", "sgw_rtp_packets_received_total",
                     "sgw_rtp_packets_lost_total"):
            self.assertTrue(m.has(name), self._diag(f"/metrics lacks {name}:\n{m.text[:3000]}"))
        self.assertEqual(m.get("sgw_active_sessions"), 0.0, m.text[:3000])

    def test_unknown_path_404(self):
        status, _, _ = self.daemon.http("/no-such-endpoint")
        self.assertEqual(status, 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
