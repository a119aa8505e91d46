"""Call lifecycle guarantees (docs/guarantees.md), with the real siprecd:

- a refused call leaves nothing: INVITEs refused for want of RTP ports leave
  no spool file, and nothing is published for them after a restart;
- what is durable at the 200 OK: a kill -9 right after the ACK keeps the
  session's participants, streams and metadata XML;
- shutdown: one SIGTERM (drain) and two SIGTERMs (stop at once) with calls in
  progress end cleanly (exit 0, no sanitizer report when built with ASan), and
  every answered call becomes a recording (at once or by recovery).
"""

import glob
import json
import os
import signal
import subprocess
import time
import unittest

from harness import (LOOPBACK, Call, Daemon, describe, metadata_xml, multipart, sdp,
                     siprec_headers, siprec_streams, wait_until)

SIPREC_SRC = os.environ.get("SIPREC_SRC", "siprec-src")
BODY_TYPE = 'multipart/mixed;boundary="OSS-unique-boundary-42"'
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def spools(d):
    return sorted(glob.glob(os.path.join(d.spool_dir, "*.spool")))


def recordings(d):
    out = []
    for path in glob.glob(os.path.join(d.recordings_dir, "**", "*.json"), recursive=True):
        with open(path) as f:
            out.append(json.load(f))
    return out


def invite_body():
    return multipart([("application/sdp", sdp(siprec_streams(2))),
                      ("application/rs-metadata+xml", metadata_xml(2))])


def restart(d):
    """A new daemon on the same folders (what an operator's restart does)."""
    d2 = Daemon()
    d2.recordings_dir, d2.spool_dir = d.recordings_dir, d.spool_dir
    return d2.start()


class LifecycleTestCase(unittest.TestCase):

    def assert_clean_exit(self, d, code):
        self.assertEqual(code, 0, d.diagnostics())
        err = d.stderr_text()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, err, d.diagnostics(200))


class RefusedCallsTest(LifecycleTestCase):

    def test_invites_refused_for_ports_leave_no_spool_and_no_recording(self):
        d = Daemon()
        d.rtp_max = d.rtp_min + 3  # two port pairs of its reserved range: one two-stream call fits
        d.start()
        try:
            with d.client("udp") as c:
                first = Call(c)
                r = first.invite(invite_body(), BODY_TYPE, siprec_headers())
                self.assertEqual(r.status if r else None, 200, describe(r))
                refused = []
                for _ in range(3):
                    call = Call(c)
                    r = call.invite(invite_body(), BODY_TYPE, siprec_headers())
                    self.assertIsNotNone(r, d.diagnostics())
                    self.assertEqual(r.status, 503, describe(r))
                    self.assertEqual(r.reason, "No media ports available")
                    self.assertIsNotNone(r.header("Retry-After"))
                    refused.append(call.call_id)
                # Only the answered call has a spool; the refused ones wrote nothing.
                self.assertEqual(len(spools(d)), 1, spools(d))
                self.assertEqual(d.metrics().get("sgw_invites_total", code="503"), 3)
                log = d.stderr_text()
                for call_id in refused:
                    self.assertIn(f"INVITE {call_id} refused: 503 No media ports available", log)
                r = first.bye()
                self.assertEqual(r.status if r else None, 200, describe(r))
            self.assertTrue(wait_until(lambda: len(recordings(d)) == 1 and not spools(d), 15),
                            d.diagnostics())
            # A crash now, then a restart: nothing comes back for the refused calls.
            d.kill()
            d2 = restart(d)
            try:
                # The restarted daemon has recovered what there was (nothing) once it is ready.
                docs = recordings(d2)
                self.assertEqual([doc["recording_call_id"] for doc in docs], [first.call_id])
                self.assertEqual(spools(d2), [])
            finally:
                self.assert_clean_exit(d2, d2.stop())
                d2.cleanup()
        finally:
            d.cleanup()


class AnswerDurabilityTest(LifecycleTestCase):

    def test_kill9_right_after_the_ack_keeps_participants_streams_and_metadata(self):
        d = Daemon()
        d.start()
        try:
            with d.client("udp") as c:
                call = Call(c)
                r = call.invite(invite_body(), BODY_TYPE, siprec_headers())  # sends the ACK
                self.assertEqual(r.status if r else None, 200, describe(r))
                d.proc.send_signal(signal.SIGKILL)
                d.proc.wait(10)
            self.assertEqual(len(spools(d)), 1)
            d2 = restart(d)
            try:
                self.assertTrue(wait_until(lambda: len(recordings(d2)) == 1, 15), d2.diagnostics())
                doc = recordings(d2)[0]
                self.assertEqual(doc["recording_call_id"], call.call_id)
                self.assertFalse(doc["complete"])
                self.assertEqual(len(doc["participants"]), 2, doc)
                self.assertEqual(len(doc["streams"]), 2, doc)
                self.assertEqual(len(doc["metadata_xml"]), 1, doc)
                self.assertIn("urn:ietf:params:xml:ns:recording:1", doc["metadata_xml"][0]["xml"])
                # The finaliser publishes the recording, then removes the spool: wait for the second.
                self.assertTrue(wait_until(lambda: spools(d2) == [], 15), spools(d2))
            finally:
                self.assert_clean_exit(d2, d2.stop())
                d2.cleanup()
        finally:
            if d.alive():
                d.kill()
            d.cleanup()


class ShutdownTest(LifecycleTestCase):
    CALLS = 6

    def shutdown_under_load(self, signals):
        d = Daemon()
        d.start()
        src = None
        try:
            src = subprocess.Popen(
                [SIPREC_SRC, f"sip:{LOOPBACK}:{d.sip_port}", "--calls", str(self.CALLS),
                 "--concurrency", str(self.CALLS), "--rate", "50", "--duration", "60",
                 "--max-wall", "120"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Every call answered and in progress (RTP flowing) before the signal.
            ok = wait_until(lambda: d.metrics().get("sgw_invites_total", code="200") == self.CALLS
                            and d.metrics().get("sgw_rtp_packets_received_total") > 50 * self.CALLS, 30)
            self.assertTrue(ok, d.diagnostics())
            for _ in range(signals):
                d.send_signal(signal.SIGTERM)
            code = d.wait_exit(60)
            self.assertIsNotNone(code, d.diagnostics())
            self.assert_clean_exit(d, code)
            # Whatever the stop did not finish, recovery does.
            d2 = restart(d)
            try:
                self.assertTrue(wait_until(lambda: len(recordings(d2)) == self.CALLS and not spools(d2), 30),
                                d2.diagnostics())
                docs = recordings(d2)
                self.assertEqual(len({doc["recording_id"] for doc in docs}), self.CALLS)
                for doc in docs:
                    self.assertFalse(doc["complete"], doc)  # cut short by the stop, and says so
                    self.assertEqual(len(doc["participants"]), 2, doc)
            finally:
                self.assert_clean_exit(d2, d2.stop())
                d2.cleanup()
        finally:
            if src is not None:
                src.kill()
                src.wait(10)
            if d.alive():
                d.kill()
            d.cleanup()

    def test_one_sigterm_drains_calls_in_progress(self):
        self.shutdown_under_load(1)

    def test_two_sigterms_stop_at_once_with_calls_in_progress(self):
        self.shutdown_under_load(2)


if __name__ == "__main__":
    unittest.main()
