"""Operations: log.format json, log.redact and SIGHUP reload, against the real siprecd.

A call is placed with the real siprec-src; every stderr line of a JSON-logging
daemon must parse, and the lines about the call carry its ids. With log.redact
the SRC's AoR (present in the same run without redaction) is gone from the log
while the recording still holds what the SRC sent.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import unittest

from harness import LOOPBACK, Daemon, wait_until

AOR = "src@127.0.0.1"  # siprec-src's From AoR (sip:src@HOST)


def siprec_src() -> str:
    path = os.environ.get("SIPREC_SRC", "")
    if not path or not os.access(path, os.X_OK):
        raise AssertionError("SIPREC_SRC (path of siprec-src) is not set or not executable")
    return path


def one_call(daemon: Daemon) -> dict:
    """One verified 1 s call; returns the recording JSON."""
    p = subprocess.run([siprec_src(), f"sip:{LOOPBACK}:{daemon.sip_port};transport=udp", "--duration", "1",
                        "-q", "--verify", daemon.recordings_dir],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"siprec-src failed ({p.returncode}):\n{p.stdout}{p.stderr}\n{daemon.diagnostics(30)}"
    docs = glob.glob(os.path.join(daemon.recordings_dir, "**", "*.json"), recursive=True)
    assert len(docs) == 1, f"expected one recording JSON, got {docs}"
    with open(docs[0]) as f:
        return json.load(f)


class LogFormatTest(unittest.TestCase):

    def run_daemon(self, log: dict) -> tuple[Daemon, dict]:
        d = Daemon(config={"log": log})
        self.addCleanup(d.cleanup)
        d.start()
        rec = one_call(d)
        self.assertEqual(d.stop(), 0, d.diagnostics())
        return d, rec

    def test_json_lines_parse_and_carry_call_ids(self):
        d, rec = self.run_daemon({"format": "json"})
        lines = d.stderr_text().splitlines()
        self.assertGreater(len(lines), 5, d.diagnostics())
        about_call = []
        for l in lines:
            try:
                j = json.loads(l)
            except ValueError:
                self.fail(f"stderr line is not JSON: {l!r}")
            for k in ("time", "level", "thread", "message"):
                self.assertIn(k, j, l)
            if j.get("recording_id") == rec["recording_id"]:
                about_call.append(j)
        self.assertGreaterEqual(len(about_call), 3, d.diagnostics())
        for j in about_call:
            self.assertEqual(j["call_id"], rec["recording_call_id"], j)
            self.assertEqual(j["conversation_id"], rec["conversation_id"], j)
            self.assertEqual(j["node"], rec["gateway"]["node"], j)
            self.assertEqual(j["region"], rec["gateway"]["region"], j)
        self.assertTrue(any("published" in j["message"] for j in about_call), about_call)

    def test_redact_masks_the_aor_in_logs_only(self):
        plain, _ = self.run_daemon({"format": "text"})
        self.assertIn(AOR, plain.stderr_text(), "the AoR must be logged without redaction (else this test "
                                                "proves nothing)")
        red, rec = self.run_daemon({"format": "text", "redact": True})
        text = red.stderr_text()
        self.assertNotIn(AOR, text, red.diagnostics())
        self.assertIn("sip:***@127.0.0.1", text)
        self.assertIn(rec["recording_id"], text)  # ids stay readable
        # The recording keeps what the SRC sent.
        self.assertIn("sip:+15550000000@carrier.example.net", json.dumps(rec),
                      "redaction must not touch recordings (siprec-src's caller AoR)")


class ReloadTest(unittest.TestCase):

    def test_sighup_applies_log_level_and_names_the_rest(self):
        d = Daemon(config={"log": {"level": "info"}, "metadata": {"max_bytes": 65536}}, log_level="")
        self.addCleanup(d.cleanup)
        # The file sets the level (a --log-level flag would override it on reload too).
        d.argv = lambda: [a for a in Daemon.argv(d) if a not in ("--log-level", "")]
        d.start()
        with open(d.config_path, "w") as f:
            f.write("log:\n  level: debug\nsip:\n  max_sessions: 7\nmetadata:\n  max_bytes: 131072\n")
        d.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload: changed but not reloadable" in d.stderr_text(), 10),
                        d.diagnostics())
        text = d.stderr_text()
        self.assertIn("reload: applied log (level debug", text)
        self.assertIn("reload: applied sip.max_sessions 7", text)
        self.assertIn("not reloadable (restart to apply): metadata.max_bytes", text)
        # The new level is live: debug lines now appear (an OPTIONS ping logs at debug).
        n = len(text.splitlines())
        one_call(d)
        self.assertTrue(any(" debug " in l for l in d.stderr_text().splitlines()[n:]), d.diagnostics())
        self.assertEqual(d.stop(), 0, d.diagnostics())


if __name__ == "__main__":
    unittest.main()
