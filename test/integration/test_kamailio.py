"""The Kamailio drill in CI (issue 13 item 5, docs/deployment.md): scripts/kamailio-drill runs
Kamailio with contrib/kamailio/kamailio.cfg as shipped in front of three siprecd on loopback,
siprec-src places 60 calls through it, gw-b is drained and then gw-c is kill -9'd mid-run.

Asserted here on the drill's JSON (the script checks the same and more, each failure a PROBLEM
line): every call ok and verified on some node (siprec-src --verify over the three folders);
no call that started after the drain on gw-b, none after the kill on gw-c; both left
Kamailio's set within two probe intervals + 2 s; the calls gw-c held when it died were
re-established on gw-a, gw-c's fragment published complete: false by its restart, and
`siprecd conversation` covers each of them but for detection + new setup + the fsync cadence
(docs/failover.md); every other recording complete."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALLS = 60


class KamailioDrillTest(unittest.TestCase):

    def test_drain_then_kill_behind_kamailio(self):
        build = os.path.dirname(os.path.dirname(os.path.dirname(os.environ["SIPRECD"])))
        out = os.path.join(tempfile.mkdtemp(prefix="sgw-kamailio-it-"), "drill.json")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "kamailio-drill"),
                            "--calls", str(CALLS), "--rate", "4", "--duration", "6", "--ping-interval", "1",
                            "--build", build, "--json", out],
                           capture_output=True, text=True, timeout=220)
        print(r.stdout)
        with open(out) as f:
            doc = json.load(f)
        self.assertEqual(doc["problems"], [], r.stdout + r.stderr[-3000:])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        fig = doc["figures"]
        # Every call ok and verified, but a call gw-c held that ended before the SRC noticed the
        # kill (its BYE got 408) or while its new INVITE was unanswered (a loaded machine):
        # siprec-src fails those, and the script checked gw-c's recording of each.
        ended = fig["ended_before_detection"] + fig["ended_while_reestablishing"]
        self.assertEqual(fig["ok"] + len(ended), CALLS, fig)
        self.assertEqual(fig["verify_passed"], fig["ok"], fig)
        # Calls by where their first recording is, by when their first INVITE left.
        phases = fig["first_fragment_by_phase"]
        self.assertEqual(sum(sum(p.values()) for p in phases.values()), CALLS, phases)
        self.assertGreaterEqual(phases["before_drain"]["gw-b"], 2, phases)  # it held calls when drained
        self.assertEqual(phases["drain_to_kill"]["gw-b"], 0, phases)
        self.assertEqual(phases["after_kill"]["gw-b"] + phases["after_kill"]["gw-c"], 0, phases)
        self.assertEqual(phases["after_kill"]["gw-a"], sum(phases["after_kill"].values()), phases)
        for node in ("gw-b", "gw-c"):
            self.assertIsNotNone(fig["left_set_s"][node], fig)
            self.assertLessEqual(fig["left_set_s"][node], fig["leave_bound_s"], fig)
        # gw-c held at least two calls when it died: each continued on gw-a, losing only what
        # docs/failover.md states (the script compared each with its bound), or ended first.
        self.assertGreaterEqual(len(fig["reestablished"]), 1, fig)
        self.assertGreaterEqual(len(fig["reestablished"]) + len(ended), 2, fig)
        for k in fig["reestablished"]:
            self.assertGreaterEqual(k["covered_ms"], k["bound_ms"], k)
            self.assertGreater(k["lost_ms"], 0, k)  # a node loss is never free: it is stated


if __name__ == "__main__":
    unittest.main()
