"""S3 exactly once (issue 8 items 14, 15): a fault-injecting proxy (s3fault.py)
sits between the real siprecd and the real S3 server (Ceph radosgw from
scripts/s3-server, the s3_server_start fixture). It loses the reply of the call
that wrote an object, and rewrites ETags the way an SSE-KMS server returns them
(not MD5s). Whatever happens, every key holds exactly one version (Object Lock
COMPLIANCE: a second one could never be deleted) and the delivery is verified.
docs/storage.md, docs/guarantees.md."""

from __future__ import annotations

import hashlib
import os
import unittest

from harness import LOOPBACK
from s3fault import FaultProxy
from test_s3_delivery import S3Case, sha256_file


def md5_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


class ExactlyOnceTest(S3Case):

    def proxy(self, **kw) -> FaultProxy:
        p = FaultProxy(int(self.server.endpoint.rsplit(":", 1)[1]), **kw)
        self.addCleanup(p.close)
        return p

    def assert_versions(self, bucket: str, entry: dict):
        versions = self.server.client.versions(bucket)
        self.assertEqual(sorted(v["key"] for v in versions), sorted(o["key"] for o in entry["objects"]),
                         f"expected exactly one version per key, got {versions}")
        self.assert_delivered_once(bucket, [entry])

    def test_lost_complete_multipart_upload_reply_leaves_one_version(self):
        """The server completes the multipart upload but its reply never reaches
        siprecd (the proxy reads it, then closes the connection). The next
        attempt must find the object by HEAD instead of starting a second
        upload (on radosgw ListParts then says the upload is gone)."""
        bucket = self.new_bucket(lock=True)
        first_upload: list[str] = []

        def drop(req) -> bool:
            if req.method != "POST" or "uploadId=" not in req.query:
                return False
            upload = req.query.split("uploadId=", 1)[1].split("&", 1)[0]
            if not first_upload:
                first_upload.append(upload)
            return upload == first_upload[0]  # every reply for that upload (curl may resend it once)

        proxy = self.proxy(drop_reply=drop)
        cfg = self.s3_config(bucket, endpoint=f"http://{LOOPBACK}:{proxy.port}", multipart_threshold_mb=1,
                             part_size_mb=5)
        d = self.start_daemon(cfg)
        # 16 G.722 streams for 3 s: one 16-channel 16 kHz WAV of ~1.5 MB, over the 1 MiB threshold.
        self.wideband_call(d, 3000)

        [e] = self.wait_states(d, 1, "delivered", 90)
        wav = e["objects"][0]
        self.assertGreater(os.path.getsize(wav["path"]), 1 << 20)
        self.assertTrue(proxy.dropped, "the proxy dropped no CompleteMultipartUpload reply: the fault never happened")
        self.assertTrue(all(r.method == "POST" and first_upload[0] in r.query for r in proxy.dropped), proxy.dropped)
        self.assertTrue(wav["etag"].endswith("-1"), wav)  # the object of that one upload
        self.assert_versions(bucket, e)
        self.assertEqual(len(self.server.client.versions(bucket)), 2)
        log = d.stderr_text()
        self.assertIn(f"already holds this object (version {wav['version_id']}), from multipart upload "
                      f"{first_upload[0]}; not uploaded again", log)
        creates = [r for r in proxy.requests if r.method == "POST" and r.query.startswith("uploads")]
        self.assertEqual(len(creates), 1, "a second multipart upload was started")

    def test_sse_kms_etags_and_a_lost_put_reply_leave_one_verified_version(self):
        """ETags rewritten to non-MD5 values (what SSE-KMS returns) on every PUT,
        HEAD and GET, and the reply of the first PutObject of the audio lost.
        Verification must rely on size + our metadata (recording id, SHA-256)
        and never upload the object again."""
        bucket = self.new_bucket(lock=True)
        lost: list[str] = []

        def drop(req) -> bool:
            if req.method == "PUT" and req.target.split("?")[0].endswith(".wav") and not lost:
                lost.append(req.target)
                return True
            return False

        proxy = self.proxy(drop_reply=drop, rewrite_etags=True)
        d = self.start_daemon(self.s3_config(bucket, endpoint=f"http://{LOOPBACK}:{proxy.port}"))
        self.calls(d, 1, 1.5)
        [e] = self.wait_states(d, 1, "delivered", 60)
        self.assertEqual(len(proxy.dropped), 1, proxy.dropped)
        self.assertGreater(proxy.rewritten, 0)
        self.assert_versions(bucket, e)
        for o in e["objects"]:
            # The ETag siprecd saw is not the MD5 (the fault was in effect) and did not stop verification.
            self.assertNotEqual(o["etag"], md5_file(o["path"]), o)
            self.assertIn("sha256-metadata", o["verified"], o)
            self.assertIn("retention=COMPLIANCE@", o["verified"], o)
            h = self.server.client.head(bucket, o["key"])
            self.assertEqual(h["x-amz-meta-sha256"], sha256_file(o["path"]))
            self.assertEqual(h["x-amz-meta-recording-id"], e["recording_id"])
        puts = [r for r in proxy.requests if r.method == "PUT" and r.target.split("?")[0].endswith(".wav")]
        self.assertEqual(len(puts), 1, "the audio was uploaded again")
        self.assertEqual(d.metrics().get("sgw_delivery_permanent_failures_total"), 0)


if __name__ == "__main__":
    unittest.main()
