"""recording.delivered and recording.failed events end to end (issue 14, docs/integrations.md
"Event webhooks"), with the real radosgw of the s3_server_start fixture and a real HTTP receiver
that verifies every signature (test_events.Receiver).

- EventsDeliveredToS3Test: a call delivered to a bucket with Object Lock (COMPLIANCE, 1 day);
  its recording.delivered event names the bucket and, per object, the key, version id, size,
  SHA-256, lock mode and retain-until, and every one of them matches the object in radosgw (HEAD
  of that version, read with an independent client), the local file, the delivery entry
  (`siprecd deliveries --json`) and the recording JSON (key template from its start time,
  conversation and recording id; retain-until = start + 1 day). It arrives after
  recording.published.
- EventsDeliveryFailedTest: a bucket without Object Lock cannot take locked objects: radosgw
  refuses for real, the delivery fails permanently (DeliveryQueue on_failed, the only raiser of
  recording.failed) and the event's code, error, bucket and attempts match the delivery entry in
  state failed, the DELIVERY FAILED log line and the permanent-failure metric; no
  recording.delivered is raised, and the recording stays on local disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

from harness import wait_until
from test_events import SECRET, Receiver, record_call
from test_s3_delivery import S3Case, sha256_file


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time with any fraction of a second, to the second."""
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)


class EventsS3Case(S3Case):
    def setUp(self):
        super().setUp()
        self.receiver = Receiver().start()
        self.addCleanup(self.receiver.stop)

    def events_daemon(self, bucket: str):
        config = self.s3_config(bucket)
        config["events"] = {"url": self.receiver.url, "secret": SECRET, "timeout_ms": 2000, "max_backoff_s": 2}
        return self.start_daemon(config)

    def call_and_event(self, lock: bool, stage: str, type_: str):
        """A gateway delivering to a new bucket (with Object Lock or not) and one call; returns
        (gateway, bucket, recording JSON, its event <recording_id>.<stage>.s3) once the receiver
        has that event (signature verified), after recording.published, with the call's ids."""
        bucket = self.new_bucket(lock=lock)
        d = self.events_daemon(bucket)
        call_id, doc = record_call(self, d, pause=False)
        rid = doc["recording_id"]
        event_id = f"{rid}.{stage}.s3"
        self.assertTrue(wait_until(lambda: event_id in self.receiver.ids(), 60, 0.2),
                        f"no {event_id}; got {sorted(self.receiver.ids())}\n" + d.diagnostics())
        self.assertEqual(self.receiver.bad, [])
        ev = next(e for e in self.receiver.events() if e["id"] == event_id)
        self.assertEqual(ev["type"], type_)
        self.assertEqual((ev["recording_id"], ev["call_id"], ev["conversation_id"]),
                         (rid, call_id, doc["conversation_id"]))
        ids = self.first_arrivals(rid)
        self.assertLess(ids.index(f"{rid}.40"), ids.index(event_id), ids)
        return d, bucket, doc, ev

    def first_arrivals(self, recording_id: str) -> list[str]:
        out = []
        for e in self.receiver.events():
            if e["recording_id"] == recording_id and e["id"] not in out:
                out.append(e["id"])
        return out


class EventsDeliveredToS3Test(EventsS3Case):
    def test_delivered_event_matches_the_objects_in_radosgw(self):
        d, bucket, doc, ev = self.call_and_event(True, "50", "recording.delivered")
        rid = doc["recording_id"]
        data = ev["data"]
        self.assertEqual((data["sink"], data["bucket"]), ("s3", bucket))
        [entry] = self.wait_states(d, 1, "delivered", 30)
        start = parse_time(doc["start_time"])
        base = f"{doc['gateway']['region']}/{start:%Y/%m/%d}/{doc['conversation_id']}/{rid}"
        self.assertEqual([o["key"] for o in data["objects"]], [base + ".wav", base + ".json"])
        self.assertEqual([o["key"] for o in data["objects"]], [o["key"] for o in entry["objects"]])
        for obj, eo in zip(data["objects"], entry["objects"]):
            h = self.server.client.head(bucket, obj["key"], obj["version_id"])
            self.assertTrue(obj["version_id"], obj)
            self.assertEqual(h.get("x-amz-version-id"), obj["version_id"], h)
            self.assertEqual(eo["version_id"], obj["version_id"])
            self.assertEqual(int(h["content-length"]), obj["size_bytes"])
            self.assertEqual(os.path.getsize(eo["path"]), obj["size_bytes"])
            self.assertEqual(sha256_file(eo["path"]), obj["sha256"])
            body = self.server.client.get(bucket, obj["key"], obj["version_id"])
            self.assertEqual(hashlib.sha256(body).hexdigest(), obj["sha256"])
            self.assertEqual(obj["lock_mode"], "COMPLIANCE")
            self.assertEqual(h["x-amz-object-lock-mode"], obj["lock_mode"])
            self.assertEqual(parse_time(obj["retain_until"]), parse_time(h["x-amz-object-lock-retain-until-date"]))
            self.assertEqual(parse_time(obj["retain_until"]), start.replace(microsecond=0) + timedelta(days=1))
        # The JSON object is the recording JSON the gateway published.
        with open(entry["objects"][1]["path"], "rb") as f:
            self.assertEqual(json.loads(f.read())["recording_id"], rid)


class EventsDeliveryFailedTest(EventsS3Case):
    def test_failed_event_matches_the_entry_the_log_and_the_metric(self):
        d, bucket, doc, ev = self.call_and_event(False, "45", "recording.failed")
        rid = doc["recording_id"]
        data = ev["data"]
        [entry] = self.wait_states(d, 1, "failed", 30)
        self.assertEqual((data["sink"], data["bucket"]), ("s3", bucket))
        # radosgw refuses a locked PUT into a bucket without Object Lock, or the
        # verification finds no lock: permanent either way, never retried as a transient error.
        self.assertIn(data["code"], {"InvalidRequest", "InvalidArgument", "VerifyFailed", "ObjectLockNotEnabled"})
        self.assertEqual(data["code"], entry["last_error_code"])
        self.assertIn(bucket, data["error"])
        self.assertGreaterEqual(data["attempts"], 1)
        self.assertLessEqual(data["attempts"], entry["attempts"])
        self.assertIn(f"{rid}: s3 DELIVERY FAILED ({data['code']})", d.stderr_text())
        self.assertGreaterEqual(d.metrics().get("sgw_delivery_permanent_failures_total"), 1)
        self.assertNotIn(f"{rid}.50.s3", self.receiver.ids())
        # The recording is kept locally, whole.
        for o in entry["objects"]:
            self.assertTrue(os.path.exists(o["path"]), o["path"])
        self.assertTrue(doc["complete"], doc)


if __name__ == "__main__":
    import unittest
    unittest.main()
