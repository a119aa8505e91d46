"""Residency (issue 11 item 5; docs/failover.md "Residency"): s3.zone, s3.fallback_buckets,
s3.fallback_after_s against the real radosgw of the s3_server_start fixture.

- The primary bucket works: the recording goes there, its JSON's `residency` section and
  every object's x-amz-meta-storage-* say so, nothing in the fallback.
- The primary bucket is deleted on the server after the gateway started (a real fault:
  every request gets 404 NoSuchBucket): once it has failed for s3.fallback_after_s the
  recording lands in the fallback bucket (one version per key), its objects' metadata
  name the zone, the bucket and the primary it stands in for, the JSON (local and in the
  bucket) says fallback with the reason, the metric counts it.
- --check-config refuses a fallback bucket of another zone, naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import unittest

from harness import siprecd_path, wait_until
from test_s3_delivery import S3Case

ZONE = "uk"
FALLBACK_AFTER_S = 2


class ResidencyTest(S3Case):

    def gateway(self, primary: str, fallback: str):
        config = self.s3_config(primary, zone=ZONE, fallback_after_s=FALLBACK_AFTER_S,
                                fallback_buckets=[{"bucket": fallback, "zone": ZONE}])
        return self.start_daemon(config)

    def objects(self, bucket: str) -> dict[str, list[dict]]:
        by_key: dict[str, list[dict]] = {}
        for v in self.server.client.versions(bucket):
            by_key.setdefault(v["key"], []).append(v)
        return by_key

    def local_json(self, d) -> dict:
        import glob
        paths = glob.glob(os.path.join(d.recordings_dir, "**", "*.json"), recursive=True)
        self.assertEqual(len(paths), 1, paths)
        with open(paths[0]) as f:
            return json.load(f)

    def assert_landed(self, bucket: str, primary: str, fallback: bool) -> dict:
        objs = self.objects(bucket)
        self.assertEqual(sorted(k.rsplit(".", 1)[-1] for k in objs), ["json", "wav"], objs)
        for key, versions in objs.items():
            self.assertEqual(len(versions), 1, f"{key}: {versions}")
            head = self.server.client.head(bucket, key)
            self.assertEqual(head.get("x-amz-meta-storage-zone"), ZONE, head)
            self.assertEqual(head.get("x-amz-meta-storage-bucket"), bucket, head)
            if fallback:
                self.assertEqual(head.get("x-amz-meta-storage-fallback-for"), primary, head)
            else:
                self.assertNotIn("x-amz-meta-storage-fallback-for", head)
        key = [k for k in objs if k.endswith(".json")][0]
        doc = json.loads(self.server.client.get(bucket, key))
        r = doc["residency"]
        self.assertEqual((r["zone"], r["bucket"], r["primary_bucket"], r["fallback"]),
                         (ZONE, bucket, primary, fallback), r)
        return doc

    def test_primary_works_recording_goes_there_and_says_so(self):
        primary, fallback = self.new_bucket(), self.new_bucket()
        d = self.gateway(primary, fallback)
        self.calls(d, 1, 1.5)
        entries = self.wait_states(d, 1, "delivered", 60)
        self.assertEqual(entries[0]["bucket"], primary)
        doc = self.assert_landed(primary, primary, fallback=False)
        self.assertNotIn("fallback_reason", doc["residency"])
        self.assertEqual(self.local_json(d)["residency"], doc["residency"])
        self.assertEqual(self.objects(fallback), {})
        self.assertEqual(d.metrics().get("sgw_deliveries_fallback_total"), 0)

    def test_primary_bucket_gone_recording_goes_to_the_fallback_of_its_zone(self):
        primary, fallback = self.new_bucket(), self.new_bucket()
        d = self.gateway(primary, fallback)
        # The fault, on the real server, after the gateway's start-up check passed.
        status, _, body = self.server.client.request("DELETE", primary)
        self.assertEqual(status, 204, body)
        t0 = time.time()
        self.calls(d, 1, 1.5)
        entries = self.wait_states(d, 1, "delivered", 90)
        self.assertEqual(entries[0]["bucket"], fallback, entries)
        doc = self.assert_landed(fallback, primary, fallback=True)
        reason = doc["residency"]["fallback_reason"]
        self.assertIn(f"primary bucket {primary} failing since", reason)
        self.assertIn("NoSuchBucket", reason)
        self.assertEqual(self.local_json(d)["residency"], doc["residency"])
        self.assertEqual(d.metrics().get("sgw_deliveries_fallback_total"), 1)
        # Not before the primary had failed for s3.fallback_after_s (a lower bound: never by timing).
        self.assertGreaterEqual(time.time() - t0, FALLBACK_AFTER_S)
        log = d.diagnostics(400)
        self.assertIn(f"primary bucket {primary} has failed since", log)
        self.assertIn(f"delivered to fallback bucket {fallback} (zone {ZONE})", log)


class ResidencyConfigTest(unittest.TestCase):

    def check(self, s3: str) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix="sgw-residency-") as tmp:
            path = os.path.join(tmp, "c.yaml")
            with open(path, "w") as f:
                f.write("s3:\n  bucket: recs-london\n  endpoint: http://127.0.0.1:9\n" + s3)
            return subprocess.run([siprecd_path(), "--check-config", path], capture_output=True, text=True,
                                  timeout=30, stdin=subprocess.DEVNULL)

    def test_fallback_in_the_same_zone_is_accepted(self):
        p = self.check("  zone: uk\n  fallback_after_s: 60\n"
                       "  fallback_buckets:\n    - {bucket: recs-london-2, zone: uk}\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("config OK", p.stdout)

    def test_fallback_of_another_zone_is_refused_naming_the_key(self):
        p = self.check("  zone: uk\n  fallback_buckets:\n    - {bucket: recs-london-2, zone: uk}\n"
                       "    - {bucket: recs-frankfurt, zone: eu}\n")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("s3.fallback_buckets[1].zone", p.stderr)
        self.assertIn("recs-frankfurt", p.stderr)
        self.assertNotIn("config OK", p.stdout)

    def test_zones_must_be_stated(self):
        p = self.check("  fallback_buckets:\n    - {bucket: recs-london-2, zone: uk}\n")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("s3.zone", p.stderr)
        p = self.check("  zone: uk\n  fallback_buckets:\n    - {bucket: recs-london-2}\n")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("s3.fallback_buckets[0].zone", p.stderr)


if __name__ == "__main__":
    unittest.main()
