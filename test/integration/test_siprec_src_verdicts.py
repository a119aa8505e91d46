"""siprec-src's verdicts are strict (docs/siprec-src.md, "Verdicts"): it is how users and
our tests judge the gateway, so a call is "ok" only when the recorder is proven to have
ended it. Here a real gateway loses the call -- it is killed and restarted on the same SIP
port mid-call -- and answers the BYE 481: the call must fail, and the run exit 1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import Daemon, wait_until


def siprec_src_path() -> str:
    path = os.environ.get("SIPREC_SRC", "")
    if not path or not os.access(path, os.X_OK):
        raise AssertionError("environment variable SIPREC_SRC (path of the siprec-src binary) is "
                             "not set; run through ctest or export SIPREC_SRC=/path/to/siprec-src")
    return path


class ByeVerdictTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="siprec-src-verdict-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_bye_answered_481_after_the_gateway_lost_the_call_is_a_failure(self):
        a = Daemon(transports=("udp",))
        self.addCleanup(a.cleanup)
        a.start()
        json_path = os.path.join(self.tmp, "run.json")
        argv = [siprec_src_path(), f"sip:127.0.0.1:{a.sip_port}", "--duration", "4", "--json", json_path]
        # Its few lines of output fit the pipe; read once it has ended.
        src = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: src.poll() is None and (src.kill(), src.wait(5)))
        # Answered, not just being answered: a session waiting for its spool to be durable counts
        # as active, and an INVITE still unanswered when the gateway dies is retransmitted to
        # the new one (which may refuse it 503 while it starts) instead of ending in a BYE.
        self.assertTrue(wait_until(lambda: a.metrics().get("sgw_invites_total", code="200") >= 1, 10),
                        a.diagnostics())
        # The gateway dies and comes back on the same SIP port without the call.
        a.send_signal(signal.SIGKILL)
        a.wait_exit(10)
        b = Daemon(transports=("udp",))
        self.addCleanup(b.cleanup)
        b.sip_port = a.sip_port
        b.start()
        out, _ = src.communicate(timeout=60)
        rc = src.returncode
        self.assertEqual(rc, 1, out)
        with open(json_path) as f:
            run = json.load(f)
        self.assertEqual((run["calls"], run["ok"], run["failed"]), (1, 0, 1), out)
        self.assertEqual(run["failures"], {"481": 1}, out)
        rec = run["records"][0]
        self.assertEqual((rec["status"], rec["code"]), ("failed", 481), rec)
        self.assertIn("the recorder had lost the call", rec["reason"])
        self.assertIn("BYE answered 481", " ".join(rec["events"]))
        self.assertIn("FAILED", out)
        self.assertEqual(b.stop(), 0, b.diagnostics())


if __name__ == "__main__":
    unittest.main()
