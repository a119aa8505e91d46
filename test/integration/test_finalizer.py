"""The finaliser under load and faults, end to end with the real siprecd:

- start-up recovery of many leftover spools runs in the background: a new call
  is answered 200 while recovery is still in progress (sgw_recovery_pending > 0
  after the 200), and every leftover recording is published;
- a tiny finaliser queue (recording.finalize_queue: 1): spools that did not fit
  are found by the periodic rescan and published without a restart;
- the recordings folder fills up (a small tmpfs): the finalisation fails, is
  retried, and once space returns the recording is published without a restart,
  stating the failure and its cause (integrity.finalize_failures, last error).
"""

import glob
import json
import os
import shutil
import subprocess
import time
import unittest
import uuid

from harness import (Daemon, answered_call, answered_call_recording, describe, metadata_xml, multipart, sdp,
                     send_tones, siprec_headers, wait_until)
from test_recording import streams_for

SPOOL_MAGIC = b"SGWSPOOL"
SYNC = bytes([0xF3, 0x5B, 0x0C, 0x7A])


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def clone_spool(src: str, dst_dir: str) -> str:
    """A copy of a spool under a new recording id of the same length (docs/spool.md): the
    id is replaced in the header and in every record that holds it, and their CRCs are
    recomputed; the audio records are copied as they are."""
    data = bytearray(open(src, "rb").read())
    assert data[:8] == SPOOL_MAGIC
    salt = bytes(data[10:14])
    n = int.from_bytes(data[14:16], "big")
    old = bytes(data[16:16 + n])
    new = str(uuid.uuid4()).encode()[:n].ljust(n, b"0")
    out = bytearray(data[:16]) + new
    out += crc32c(bytes(out)).to_bytes(4, "big")
    pos = 16 + n + 4
    while pos + 13 <= len(data):
        assert data[pos:pos + 4] == SYNC, pos
        length = int.from_bytes(data[pos + 4:pos + 8], "big")
        rtype = data[pos + 8]
        payload = bytes(data[pos + 13:pos + 13 + length])
        crc = bytes(data[pos + 9:pos + 13])
        if old in payload:
            payload = payload.replace(old, new)
            crc = crc32c(salt + length.to_bytes(4, "big") + bytes([rtype]) + payload).to_bytes(4, "big")
        out += SYNC + length.to_bytes(4, "big") + bytes([rtype]) + crc + payload
        pos += 13 + length
    path = os.path.join(dst_dir, new.decode() + ".spool")
    with open(path, "wb") as f:
        f.write(out)
    return path


def spools(d):
    return glob.glob(os.path.join(d.spool_dir, "*.spool"))


def recordings(d):
    return glob.glob(os.path.join(d.recordings_dir, "**", "*.json"), recursive=True)


def pcma_invite(call):
    """INVITEs a two-stream PCMA recording session (harness.answered_call's invite)."""
    return call.invite(multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                                  ("application/rs-metadata+xml", metadata_xml(2))]),
                       'multipart/mixed;boundary="OSS-unique-boundary-42"', siprec_headers())


def make_call(test, d, duration_ms=1500):
    """One call with audio on both streams; returns after the BYE was answered."""
    answered_call_recording(test, d, pcma_invite, duration_ms=duration_ms, timeout=None)


def leftover_spools(test, count, duration_ms=2000):
    """A spool kept by a first gateway (recording.keep_spool), cloned `count` times into a
    fresh folder: `count` finished sessions that a new gateway must recover."""
    d = Daemon(config={"recording": {"keep_spool": True}})
    d.start()
    try:
        make_call(test, d, duration_ms)
        test.assertTrue(wait_until(lambda: recordings(d), 20), d.diagnostics())
        spools = glob.glob(os.path.join(d.spool_dir, "*.spool"))
        test.assertEqual(len(spools), 1, spools)
        spool_dir = os.path.join(d.tmp, "leftover")
        os.makedirs(spool_dir)
        for _ in range(count):
            clone_spool(spools[0], spool_dir)
        kept = os.path.join(os.path.dirname(d.tmp), os.path.basename(d.tmp) + "-leftover")
        shutil.move(spool_dir, kept)
        return kept
    finally:
        test.assertEqual(d.stop(), 0)
        d.cleanup()


class BackgroundRecoveryTest(unittest.TestCase):

    def test_new_call_answered_while_recovery_runs(self):
        n = 300
        spool_dir = leftover_spools(self, n)
        d = Daemon(config={"recording": {"finalize_workers": 1}})
        shutil.rmtree(d.spool_dir)
        shutil.move(spool_dir, d.spool_dir)
        d.start()
        try:
            with d.client("udp") as c:
                call, _ = answered_call(self, c, pcma_invite)
                # Answered while the leftovers were still being recovered.
                pending = d.metrics().get("sgw_recovery_pending")
                self.assertGreater(pending, 0, "recovery had finished before the call was answered: "
                                   "use more leftover spools")
                bye = call.bye()
                self.assertEqual(bye.status if bye else None, 200, describe(bye))
            ok = wait_until(lambda: len(recordings(d)) == n + 1, 240, interval=0.5)
            self.assertTrue(ok, f"{len(recordings(d))} of {n + 1} published\n" + d.diagnostics())
            m = d.metrics()
            self.assertEqual(m.get("sgw_recovery_pending"), 0)
            self.assertEqual(m.get("sgw_recordings_recovered_total"), n)
            self.assertTrue(wait_until(lambda: not spools(d), 15), spools(d))  # removed after publication
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class QueueOverflowTest(unittest.TestCase):

    def test_spools_beyond_a_tiny_queue_are_published_by_the_rescan(self):
        n = 12
        spool_dir = leftover_spools(self, n, duration_ms=800)
        d = Daemon(config={"recording": {"finalize_queue": 1, "finalize_rescan_s": 1}})
        shutil.rmtree(d.spool_dir)
        shutil.move(spool_dir, d.spool_dir)
        d.start()
        try:
            self.assertGreaterEqual(d.metrics().get("sgw_finalize_queue_full_total"), n - 1)
            make_call(self, d, 800)  # a live call finishes meanwhile, too
            ok = wait_until(lambda: len(recordings(d)) == n + 1, 120, interval=0.5)
            self.assertTrue(ok, f"{len(recordings(d))} of {n + 1} published\n" + d.diagnostics())
            self.assertGreaterEqual(d.metrics().get("sgw_finalize_rescanned_total"), n - 1)
            self.assertTrue(wait_until(lambda: not spools(d), 15), spools(d))  # removed after publication
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class DiskFullTest(unittest.TestCase):
    """The recordings folder is a 80 MiB tmpfs mounted by the test (CI runs as root)."""

    def test_finalisation_retried_once_space_returns(self):
        self.assertEqual(os.geteuid(), 0, "this test mounts a tmpfs: run it as root (CI does); "
                         "FinalizerJobs.FailedFinalisationIsRetriedWithItsCause covers the logic without")
        d = Daemon()
        mounted = False
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", d.recordings_dir], check=True)
            mounted = True
            d.start()
            with d.client("udp") as c:
                call, ports = answered_call(self, c, pcma_invite)
                send_tones(ports, 1500, [440, 1000])
                # The disk fills up before the call ends.
                filler = os.path.join(d.recordings_dir, "filler")
                subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=100"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                bye = call.bye()
                self.assertEqual(bye.status if bye else None, 200, describe(bye))
            self.assertTrue(wait_until(lambda: d.metrics().get("sgw_finalize_retries_total") >= 2, 30),
                            d.diagnostics())
            self.assertEqual(recordings(d), [])
            self.assertEqual(len(glob.glob(os.path.join(d.spool_dir, "*.spool"))), 1)
            os.unlink(filler)  # space returns; no restart
            self.assertTrue(wait_until(lambda: recordings(d), 90, interval=0.5), d.diagnostics())
            with open(recordings(d)[0]) as f:
                doc = json.load(f)
            self.assertTrue(doc["complete"], doc["incomplete_reason"])  # late, not damaged
            self.assertGreaterEqual(doc["integrity"]["finalize_failures"], 2)
            # The cause names the file the full folder refused (not "gateway stopped").
            self.assertIn(d.recordings_dir, doc["integrity"]["last_finalize_error"])
            self.assertTrue(any("failed finalisation attempt" in w for w in doc["warnings"]), doc["warnings"])
            self.assertTrue(wait_until(lambda: not spools(d), 15), spools(d))  # removed after publication
        finally:
            if d.alive():
                self.assertEqual(d.stop(), 0)
            if mounted:
                subprocess.run(["umount", "-l", d.recordings_dir], check=False)
            d.cleanup()


class SilenceWarningTest(unittest.TestCase):
    """Issue 9 item 8: a stream that receives nothing is never a silent "good" recording."""

    def test_silent_stream_is_warned_first_and_counted(self):
        d = Daemon(config={"recording": {"silence_warning_s": 2}})
        d.start()
        try:
            with d.client("udp") as c:
                call, ports = answered_call(self, c, pcma_invite)
                # Only stream 1 sends; stream 2 stays silent for the whole call (> 2 s).
                send_tones(ports[:1], 3000, [440])
                bye = call.bye()
                self.assertEqual(bye.status if bye else None, 200, describe(bye))
            self.assertTrue(wait_until(lambda: recordings(d), 20), d.diagnostics())
            path = recordings(d)[0]
            text = open(path).read()
            doc = json.loads(text)
            self.assertTrue(text.startswith('{\n  "warnings": ['), text[:200])  # what a reviewer sees first
            silent = [w for w in doc["warnings"] if w.startswith("stream 2") and "no audio received at all" in w]
            self.assertEqual(len(silent), 1, doc["warnings"])
            self.assertFalse(any(w.startswith("stream 1") for w in doc["warnings"]), doc["warnings"])
            by_label = {s["label"]: s for s in doc["integrity"]["streams"]}
            self.assertEqual(by_label["2"]["packets_received"], 0)
            self.assertEqual(len(by_label["2"]["silences"]), 1)
            self.assertGreaterEqual(by_label["2"]["silences"][0]["length_ms"], 3000)
            self.assertEqual(by_label["1"]["silences"], [])
            self.assertGreater(by_label["1"]["packets_expected"], 100)
            self.assertEqual(by_label["1"]["packets_received"], by_label["1"]["packets_expected"])
            self.assertTrue(doc["complete"], doc["incomplete_reason"])  # nothing that reached us is missing
            self.assertEqual(d.metrics().get("sgw_recording_warnings_total", kind="silence"), 1)
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
