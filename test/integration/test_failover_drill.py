"""The failover drill in CI (issue 11, docs/failover.md), scaled down: scripts/failover-drill
with few short calls over DNS SRV to london, london kill -9'd mid-call, every call continued
on frankfurt. Two variants, one ctest each:

- IntactDiskTest (integration.failover_drill): 6 calls of 12 s, london killed at 4 s and
  restarted on its intact disk: its own recovery delivers its fragments.
- DiskLostTest (integration.failover_drill_disk_lost): 4 calls of 12 s shipping a partial
  every 2 s, london killed at 6 s and its spool, queue and recordings deleted (the disk is
  gone): `siprecd recover` on frankfurt rebuilds london's fragments from the shipped
  partials and frankfurt delivers them.

The script checks per call: two fragments (london then frankfurt), coverage >= call -
detection - setup - one interval (the fsync cadence with the disk intact, the segment
interval with it lost), every gap with a cause, the stitched audio's tones on the right
channel on both sides, one version per key, no partial left; it prints the figures."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DrillCase(unittest.TestCase):

    def drill(self, calls: int, *args: str) -> dict:
        build = os.path.dirname(os.path.dirname(os.path.dirname(os.environ["SIPRECD"])))
        out = os.path.join(tempfile.mkdtemp(prefix="sgw-drill-it-"), "drill.json")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "failover-drill"),
                            "--calls", str(calls), *args, "--build", build, "--json", out],
                           capture_output=True, text=True, timeout=400)
        print(r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(out) as f:
            doc = json.load(f)
        self.assertEqual(doc["problems"], [], r.stdout)
        self.assertEqual(len(doc["rows"]), calls, r.stdout)
        for row in doc["rows"]:
            self.assertEqual(row["nodes"], ["london", "frankfurt"], row)
            self.assertIsNotNone(row["detection_ms"], row)
            self.assertGreaterEqual(row["wall_ms"] - row["lost_ms"], row["bound_ms"], row)
            self.assertTrue(all(cause for cause, _ in row["gaps"]), row)
        return doc


class IntactDiskTest(DrillCase):

    def test_intact_disk_variant(self):
        doc = self.drill(6, "--duration", "12", "--variant", "intact")
        for row in doc["rows"]:
            self.assertIn("between_fragments", [c for c, _ in row["gaps"]], row)


class DiskLostTest(DrillCase):

    def test_disk_lost_variant(self):
        doc = self.drill(4, "--duration", "12", "--kill-at", "6", "--segment-s", "2", "--variant", "disk-lost")
        for row in doc["rows"]:
            # london's rebuilt fragment ends with the node_lost gap (what it had not shipped).
            self.assertIn("node_lost", [c for c, _ in row["gaps"]], row)
            self.assertLessEqual(row["unshipped_ms"], 2 * 2000, row)


if __name__ == "__main__":
    unittest.main()
