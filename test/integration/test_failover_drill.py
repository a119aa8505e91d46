"""The failover drill in CI (issue 11, docs/failover.md), scaled down: scripts/failover-drill
with 6 calls of 12 s, london kill -9'd at 4 s and restarted on its intact disk (its own
recovery delivers its fragments); the script checks, per call, two fragments (london then
frankfurt) in their own buckets of the fixture's radosgw, coverage >= call - detection -
setup - the fsync cadence, every gap with a cause, the stitched audio's tones on the right
channel on both sides, one version per key and no partial left; it prints the figures.
The disk-lost variant needs segment shipping and `siprecd recover` (issue 11 items 1-2)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FailoverDrillTest(unittest.TestCase):

    def test_intact_disk_variant(self):
        build = os.path.dirname(os.path.dirname(os.path.dirname(os.environ["SIPRECD"])))
        out = os.path.join(tempfile.mkdtemp(prefix="sgw-drill-it-"), "drill.json")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "failover-drill"),
                            "--calls", "6", "--duration", "12", "--variant", "intact",
                            "--build", build, "--json", out],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(out) as f:
            doc = json.load(f)
        self.assertEqual(doc["problems"], [], r.stdout)
        self.assertEqual(len(doc["rows"]), 6, r.stdout)
        for row in doc["rows"]:
            self.assertEqual(row["nodes"], ["london", "frankfurt"], row)
            self.assertIsNotNone(row["detection_ms"], row)
            self.assertGreaterEqual(row["wall_ms"] - row["lost_ms"], row["bound_ms"], row)
            self.assertIn("between_fragments", [c for c, _ in row["gaps"]], row)
        print(r.stdout)


if __name__ == "__main__":
    unittest.main()
