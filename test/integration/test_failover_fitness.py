"""Fitness the pool can rely on (issue 11 item 4, docs/failover.md): OPTIONS and new
INVITEs get 503 + Retry-After, /readyz 503 with the reason as JSON, and
sgw_unfit_refusals_total{reason} counts them, for each reason -- draining, at
sip.max_sessions, the spool's filesystem below recording.min_free_mb, the delivery
backlog older than storage.max_backlog_age_s; `siprecd drain` (POST /drain) drains a
running node without stopping it, drain.max_s BYEs what is left with a Reason, and
`siprecd drain --resume` takes sessions again."""

import json
import subprocess
import time
import unittest

from harness import (Call, Daemon, describe, free_tcp_port, recording_for_call, siprec_body,
                     siprec_headers, wait_until, siprecd_path)

RETRY_AFTER = "7"


def readyz(d: Daemon) -> tuple[int, dict]:
    status, body, headers = d.http("/readyz")
    return status, json.loads(body)


def reasons(d: Daemon) -> list[str]:
    return [r["reason"] for r in readyz(d)[1]["reasons"]]


class FitnessCase(unittest.TestCase):

    def start(self, config: dict) -> Daemon:
        config.setdefault("sip", {})["retry_after_s"] = int(RETRY_AFTER)
        d = Daemon(config=config)
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def assertRefused(self, d: Daemon, reason: str):
        """OPTIONS and a new INVITE answered 503 + Retry-After, /readyz 503 naming reason,
        and the metric counts both refusals under that label."""
        before = d.metrics().get("sgw_unfit_refusals_total", reason=reason)
        with d.client("udp") as c:
            opt = c.options()
            self.assertEqual(opt and opt.status, 503, f"OPTIONS ({reason}): {describe(opt)}\n" + d.diagnostics())
            self.assertEqual((opt.header("retry-after") or "").split(";")[0].strip(), RETRY_AFTER, describe(opt))
            body, ctype = siprec_body()
            r = Call(c).invite(body, ctype, siprec_headers())
            self.assertEqual(r and r.status, 503, f"INVITE ({reason}): {describe(r)}\n" + d.diagnostics())
            self.assertEqual((r.header("retry-after") or "").split(";")[0].strip(), RETRY_AFTER, describe(r))
        status, doc = readyz(d)
        self.assertEqual(status, 503, doc)
        self.assertFalse(doc["ready"], doc)
        self.assertIn(reason, [x["reason"] for x in doc["reasons"]], doc)
        self.assertTrue(all(x["detail"] for x in doc["reasons"]), doc)
        self.assertEqual(d.metrics().get("sgw_unfit_refusals_total", reason=reason), before + 2,
                         d.metrics().text[-3000:])

    def assertFit(self, d: Daemon):
        with d.client("udp") as c:
            opt = c.options()
            self.assertEqual(opt and opt.status, 200, describe(opt) + d.diagnostics())
        status, doc = readyz(d)
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc, {"ready": True, "reasons": []})

    def established(self, d: Daemon, c) -> Call:
        call = Call(c)
        body, ctype = siprec_body()
        r = call.invite(body, ctype, siprec_headers())
        self.assertEqual(r and r.status, 200, describe(r) + d.diagnostics())
        return call

    def drain_cli(self, d: Daemon, *extra: str) -> dict:
        out = subprocess.run([siprecd_path(), "drain", "--url", f"127.0.0.1:{d.http_port}", *extra],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        return json.loads(out.stdout)


class MaxSessionsTest(FitnessCase):

    def test_at_max_sessions_options_and_invites_get_503_until_a_session_ends(self):
        d = self.start({"sip": {"max_sessions": 1}})
        self.assertFit(d)
        with d.client("udp") as c:
            call = self.established(d, c)
            self.assertRefused(d, "max_sessions")
            r = call.bye()
            self.assertEqual(r and r.status, 200, describe(r))
        self.assertTrue(wait_until(lambda: readyz(d)[0] == 200, 10), readyz(d))
        self.assertFit(d)


class SpoolDiskLowTest(FitnessCase):

    def test_spool_filesystem_below_min_free_refuses_new_sessions(self):
        # No loopback filesystem has 10^9 MB free: the real statvfs says "below".
        d = self.start({"recording": {"min_free_mb": 1_000_000_000}})
        self.assertTrue(wait_until(lambda: "spool_disk_low" in reasons(d), 15), readyz(d))
        self.assertRefused(d, "spool_disk_low")
        self.assertIn("recording.min_free_mb", d.stderr_text())


class BacklogTest(FitnessCase):

    def test_delivery_backlog_older_than_max_age_refuses_new_sessions(self):
        # S3 at a port nothing listens on: the recording's S3 delivery stays queued.
        dead = free_tcp_port()
        d = self.start({"storage": {"max_backlog_age_s": 1},
                        "s3": {"bucket": "backlog", "endpoint": f"http://127.0.0.1:{dead}",
                               "path_style": True, "access_key": "k", "secret_key": "s"}})
        with d.client("udp") as c:
            opt = c.options()  # an unreachable sink alone does not refuse calls
            self.assertEqual(opt and opt.status, 200, describe(opt) + d.diagnostics())
            call = self.established(d, c)
            self.assertEqual(call.bye().status, 200)
        self.assertTrue(wait_until(lambda: "delivery_backlog" in reasons(d), 20, 0.2), readyz(d))
        self.assertRefused(d, "delivery_backlog")


class DrainTest(FitnessCase):

    def test_drain_command_drains_without_stopping_and_bye_after_max_s(self):
        max_s = 3
        d = self.start({"drain": {"max_s": max_s}})
        self.assertFit(d)
        with d.client("udp") as a_sock, d.client("udp") as b_sock:
            a = self.established(d, a_sock)   # ends on its own during the drain
            b = self.established(d, b_sock)   # still there at drain.max_s
            t0 = time.monotonic()
            reply = self.drain_cli(d)
            self.assertTrue(reply["draining"], reply)
            self.assertEqual(reply["max_s"], max_s, reply)
            self.assertTrue(wait_until(lambda: "draining" in reasons(d), 5), readyz(d))
            self.assertRefused(d, "draining")
            # A ends by its own BYE while draining: its recording is complete.
            r = a.bye()
            self.assertEqual(r and r.status, 200, describe(r))
            # B gets the gateway's BYE, with a Reason, no earlier than drain.max_s.
            bye = None
            deadline = time.monotonic() + max_s + 15
            while bye is None and time.monotonic() < deadline:
                m = b_sock.recv(0.5)
                if m is not None and m.method == "BYE":
                    bye = m
            self.assertIsNotNone(bye, "no BYE at drain.max_s\n" + d.diagnostics())
            self.assertGreaterEqual(time.monotonic() - t0, max_s - 0.1)
            self.assertIn("cause=503", bye.header("reason") or "", bye.summary())
            b_sock.reply(bye, 200)
        _, doc_a = recording_for_call(d.recordings_dir, a.call_id) or (None, None)
        _, doc_b = recording_for_call(d.recordings_dir, b.call_id) or (None, None)
        self.assertIsNotNone(doc_a, d.diagnostics())
        self.assertIsNotNone(doc_b, d.diagnostics())
        self.assertTrue(doc_a["complete"], doc_a.get("incomplete_reason"))
        self.assertFalse(doc_b["complete"])
        # Drained, not stopped: still alive, still refusing; --resume takes calls again.
        self.assertTrue(wait_until(lambda: d.metrics().get("sgw_active_sessions") == 0, 10))
        self.assertTrue(d.alive(), d.diagnostics())
        self.assertIn("draining", reasons(d))
        reply = self.drain_cli(d, "--resume")
        self.assertFalse(reply["draining"], reply)
        self.assertTrue(wait_until(lambda: readyz(d)[0] == 200, 5), readyz(d))
        self.assertFit(d)
        with d.client("udp") as c:
            self.assertEqual(self.established(d, c).bye().status, 200)

    def test_drain_command_without_a_control_server_names_the_address(self):
        port = free_tcp_port()
        out = subprocess.run([siprecd_path(), "drain", "--url", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn(f"127.0.0.1:{port}", out.stderr)


if __name__ == "__main__":
    unittest.main()
