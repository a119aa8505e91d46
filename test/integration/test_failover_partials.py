"""In-call segment shipping and orphan adoption (issue 11 items 1, 2; docs/failover.md)
against the real radosgw of the s3_server_start fixture: partials (one per node and
interval) appear in the partials bucket while a call runs and are deleted once the final
recording is verified; a gateway
killed with -9 whose spool folder is then deleted is rebuilt by `siprecd recover` on a
second gateway (tone up to the last shipped segment, then a node_lost gap); two recovers
racing adopt it once (one object version per key); a corrupt partial is reported and
skipped, and a chunk whose CRC-32C differs is a stated gap, never stitched as audio."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import threading
import unittest
import uuid

from harness import LOOPBACK, probe_audio, wait_until
from test_finalizer import crc32c
from test_s3_delivery import S3Case, siprec_src

SEGMENT_S = 1
ORPHAN_S = 3


class PartialsCase(S3Case):

    def gateway(self, node: str, bucket: str, partials: str, adopt: bool = False):
        config = self.s3_config(bucket, partials_bucket=partials)
        config["node"] = {"name": node, "region": node}
        config["recording"] = {"segment_s": SEGMENT_S, "finalize_rescan_s": 1}
        # interval_s 1: the clean-up of an adopted run follows its delivery within a second.
        config["recovery"] = {"orphan_after_s": ORPHAN_S, "adopt": adopt, "interval_s": 1}
        return self.start_daemon(config)

    def start_call(self, d, duration: float) -> subprocess.Popen:
        p = subprocess.Popen([siprec_src(), f"sip:{LOOPBACK}:{d.sip_port}", "--calls", "1",
                              "--duration", str(duration), "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def partials(self, bucket: str) -> list[dict]:
        return [v for v in self.server.client.versions(bucket)
                if "/partial/" in v["key"] and not v["key"].endswith(("/lease", "/adopted"))
                and not v["delete_marker"]]

    def wait_partials(self, bucket: str, n: int, timeout: float = 30) -> list[dict]:
        got: list[dict] = []

        def check():
            got[:] = self.partials(bucket)
            return len(got) >= n
        self.assertTrue(wait_until(check, timeout, 0.2), f"expected {n} partials in {bucket}, got {got}")
        return got

    def kill_with_disk(self, d):
        """kill -9, then the disk is gone: spool, recordings and queue folders."""
        d.kill()
        shutil.rmtree(d.tmp, ignore_errors=True)
        os.makedirs(d.tmp, exist_ok=True)

    def recover(self, d, older_than: int = ORPHAN_S) -> dict:
        r = subprocess.run([d.binary, "recover", "--config", d.config_path, "--spool-dir", d.spool_dir,
                            "--recordings-dir", d.recordings_dir, "--older-than", str(older_than), "--json"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def recover_until_adopted(self, d, timeout: float = 30) -> dict:
        out: dict = {}

        def check():
            out.clear()
            out.update(self.recover(d))
            return bool(out["adopted"]) or bool(out["problems"])
        self.assertTrue(wait_until(check, timeout, 0.5), f"nothing adopted: {out}")
        return out

    def recording_json(self, d, timeout: float = 30) -> dict:
        found: list[str] = []

        def look():
            found[:] = glob.glob(os.path.join(d.recordings_dir, "**", "*.json"), recursive=True)
            return bool(found)
        self.assertTrue(wait_until(look, timeout, 0.3), "no recording published\n" + d.diagnostics())
        with open(found[0]) as f:
            return json.load(f), found[0]


class ShippingTest(PartialsCase):

    def test_partials_appear_during_the_call_and_go_after_verified_delivery(self):
        bucket, partials = self.new_bucket(lock=True), self.new_bucket(lock=False)
        d = self.gateway("london", bucket, partials)
        call = self.start_call(d, 6)
        got = self.wait_partials(partials, 2, 20)
        self.assertIsNone(call.poll(), "the partials must appear while the call runs")
        key = sorted(v["key"] for v in got)[0]
        # One partial per node and interval: {region}/partial/{node}/{run}/{seq}.
        self.assertRegex(key, r"^london/partial/london/[0-9]+/00000000$")
        head = self.server.client.head(partials, key)
        body = self.server.client.get(partials, key)
        self.assertEqual(head["x-amz-meta-node"], "london")
        self.assertEqual(int(head["x-amz-meta-length"]), len(body))
        # The body: "SGWPART2\n", each chunk's spool bytes, the index, and the footer
        # "\nSGWIDX <index length> <index CRC-32C>\n"; each chunk's CRC-32C is in the index.
        self.assertTrue(body.startswith(b"SGWPART2\n"), body[:16])
        footer = body[-30:]
        self.assertTrue(footer.startswith(b"\nSGWIDX ") and footer.endswith(b"\n"), footer)
        n = int(footer[8:20])
        index_bytes = body[-30 - n:-30]
        self.assertEqual(int(footer[21:29], 16), crc32c(index_bytes))
        index = json.loads(index_bytes)
        data = body[9:-30 - n]
        self.assertEqual(len(index["chunks"]), 1, index)
        chunk = index["chunks"][0]
        self.assertEqual(chunk["offset"], 0)
        self.assertEqual(chunk["length"], len(data))
        self.assertEqual(int(chunk["crc32c"], 16), crc32c(data))
        self.assertTrue(data.startswith(b"SGWSPOOL"), "the first cut of a spool starts with its header")
        self.assertEqual(index["pending"], [chunk["recording_id"]])
        self.assertEqual(call.wait(60), 0)
        self.wait_states(d, 1, "delivered", 40)
        self.assertTrue(wait_until(lambda: not self.server.client.versions(partials), 40, 0.5),
                        f"partials left after verified delivery: {self.server.client.versions(partials)}")


class AdoptionTest(PartialsCase):

    def lose_node_mid_call(self, bucket: str, partials: str, n_partials: int = 3):
        london = self.gateway("london", bucket, partials)
        self.start_call(london, 30)
        self.wait_partials(partials, n_partials, 30)
        self.kill_with_disk(london)
        return london

    def test_recover_on_a_second_gateway_rebuilds_up_to_the_last_segment(self):
        bucket, partials = self.new_bucket(lock=True), self.new_bucket(lock=False)
        self.lose_node_mid_call(bucket, partials)
        shipped = len(self.partials(partials))
        frankfurt = self.gateway("frankfurt", bucket, partials)
        out = self.recover_until_adopted(frankfurt)
        self.assertEqual(len(out["adopted"]), 1, out)
        self.assertEqual(out["adopted"][0]["node"], "london")
        self.assertEqual(out["problems"], [])
        rec, path = self.recording_json(frankfurt)
        self.assertFalse(rec["complete"])
        self.assertEqual(rec["gateway"]["node"], "london")
        self.assertIn("node london (london) lost", rec["incomplete_reason"])
        lost = [g for g in rec["gaps"] if g["cause"] == "node_lost"]
        self.assertEqual(len(lost), 1, rec["gaps"])
        self.assertEqual(lost[0]["start_ms"] + lost[0]["length_ms"], rec["duration_ms"],
                         "the node_lost gap is at the end")
        audio = [f for f in glob.glob(path[:-5] + "*") if f.endswith(".wav")]
        self.assertTrue(audio, path)
        probe = probe_audio(audio[0])
        tones = sorted(round(c["dominant_hz"]) for c in probe["channel_stats"] if c.get("dominant_hz"))
        self.assertEqual(tones, [440, 1000], probe)
        for c in probe["channel_stats"]:
            # Tone from the start up to the lost node's last shipment (at least
            # shipped-1 segments of audio), none inside the node_lost gap.
            self.assertGreaterEqual(c["active_ms"], (shipped - 2) * SEGMENT_S * 1000, probe)
            for seg in c["segments"]:
                self.assertLessEqual(seg["end_ms"],
                                     lost[0]["start_ms"] + 40, probe)
        self.wait_states(frankfurt, 1, "delivered", 40)
        self.assertTrue(wait_until(lambda: not self.server.client.versions(partials), 40, 0.5),
                        f"partials left: {self.server.client.versions(partials)}")

    def lose_node_keep_disk(self, bucket: str, partials: str, n_partials: int = 2):
        """kill -9 mid-call, the disk intact; the SRC's call is given up."""
        london = self.gateway("london", bucket, partials)
        call = self.start_call(london, 30)
        self.wait_partials(partials, n_partials, 30)
        london.kill()
        call.kill()
        call.wait()
        return london

    def test_a_restart_on_its_disk_takes_its_earlier_run_over_without_rebuilding(self):
        bucket, partials = self.new_bucket(lock=True), self.new_bucket(lock=False)
        london = self.lose_node_keep_disk(bucket, partials)
        runs_before = {v["key"].split("/")[3] for v in self.partials(partials)}
        self.assertEqual(len(runs_before), 1, runs_before)
        london.start()  # the same disk: its spool recovery publishes the call
        [e] = self.wait_states(london, 1, "delivered", 60)
        self.assert_delivered_once(bucket, [e])
        # The earlier run is its own: the recording it still has is not rebuilt from the
        # partials (no second copy), and the run is deleted once that recording is delivered.
        self.assertTrue(wait_until(lambda: not self.server.client.versions(partials), 40, 0.5),
                        f"partials left: {self.server.client.versions(partials)}")
        recs = glob.glob(os.path.join(london.recordings_dir, "**", "*.json"), recursive=True)
        self.assertEqual(len(recs), 1, recs)
        with open(recs[0]) as f:
            rec = json.load(f)
        self.assertFalse([g for g in rec["gaps"] if g["cause"] == "node_lost"], rec["gaps"])

    def test_a_restart_that_lost_a_spool_rebuilds_it_from_its_earlier_run(self):
        bucket, partials = self.new_bucket(lock=True), self.new_bucket(lock=False)
        london = self.lose_node_keep_disk(bucket, partials, 3)
        spools = glob.glob(os.path.join(london.spool_dir, "*.spool"))
        self.assertEqual(len(spools), 1, spools)
        os.unlink(spools[0])  # that file is lost; the rest of the disk is intact
        london.start()
        rec, path = self.recording_json(london, 40)
        self.assertFalse(rec["complete"])
        self.assertEqual(rec["recording_id"] + ".spool", os.path.basename(spools[0]))
        lost = [g for g in rec["gaps"] if g["cause"] == "node_lost"]
        self.assertEqual(len(lost), 1, rec["gaps"])
        audio = [f for f in glob.glob(path[:-5] + "*") if f.endswith(".wav")]
        probe = probe_audio(audio[0])
        tones = sorted(round(c["dominant_hz"]) for c in probe["channel_stats"] if c.get("dominant_hz"))
        self.assertEqual(tones, [440, 1000], probe)
        [e] = self.wait_states(london, 1, "delivered", 60)
        self.assert_delivered_once(bucket, [e])
        self.assertTrue(wait_until(lambda: not self.server.client.versions(partials), 40, 0.5),
                        f"partials left: {self.server.client.versions(partials)}")

    def test_two_gateways_given_one_node_name_never_take_each_others_live_runs(self):
        bucket, partials = self.new_bucket(lock=True), self.new_bucket(lock=False)
        a = self.gateway("london", bucket, partials)
        b = self.gateway("london", bucket, partials)  # the same node.name and region: a mistake
        calls = [self.start_call(a, 6), self.start_call(b, 6)]
        # Both ship, each under its own run, while adoption passes run every second on both.
        self.wait_partials(partials, 6, 30)
        self.assertEqual(len({v["key"].split("/")[3] for v in self.partials(partials)}), 2)
        for c in calls:
            self.assertEqual(c.wait(60), 0)
        entries = []
        for d in (a, b):
            entries += self.wait_states(d, 1, "delivered", 40)
            rec, _ = self.recording_json(d)
            self.assertTrue(rec["complete"], rec.get("incomplete_reason"))
        self.assertEqual(len(entries), 2, entries)
        self.assert_delivered_once(bucket, entries)  # one recording each, nothing rebuilt
        self.assertTrue(wait_until(lambda: not self.server.client.versions(partials), 40, 0.5),
                        f"partials left: {self.server.client.versions(partials)}")
        # Nothing was adopted, and the gateway started first said what is wrong.
        for d in (a, b):
            self.assertEqual(glob.glob(os.path.join(d.spool_dir, "*.adopt.tmp")), [])
        self.assertIn("give every gateway its own node.name", a.stderr_text())

    def test_two_concurrent_recovers_adopt_once(self):
        bucket, partials = self.new_bucket(lock=True), self.new_bucket(lock=False)
        self.lose_node_mid_call(bucket, partials, 2)
        b = self.gateway("frankfurt", bucket, partials)
        c = self.gateway("paris", bucket, partials)
        results: dict = {}

        def race():
            results.clear()
            # --older-than 0: london is already dead, so both see the orphan and really race.
            ts = [threading.Thread(target=lambda d=d: results.__setitem__(d.spool_dir, self.recover(d, 0)))
                  for d in (b, c)]
            [t.start() for t in ts]
            [t.join() for t in ts]
            return any(r["adopted"] for r in results.values())
        self.assertTrue(wait_until(race, 30, 0.5), f"nothing adopted: {results}")
        adopted = [r for r in results.values() if r["adopted"]]
        self.assertEqual(len(adopted), 1, f"exactly one node adopts: {results}")
        other = [r for r in results.values() if not r["adopted"]][0]
        self.assertTrue(other["busy"], other)
        winner = b if results[b.spool_dir]["adopted"] else c
        loser = c if winner is b else b
        [e] = self.wait_states(winner, 1, "delivered", 40)
        self.assertEqual(self.s3_entries(loser), [])
        self.assert_delivered_once(bucket, [e])
        # Later passes find nothing more to adopt.
        self.assertEqual(self.recover(loser, 0)["adopted"], [])

    def test_corrupt_partial_and_damaged_chunk_are_reported_and_never_stitched(self):
        bucket, partials = self.new_bucket(lock=True), self.new_bucket(lock=False)
        self.lose_node_mid_call(bucket, partials, 5)
        keys = sorted(v["key"] for v in self.partials(partials))

        def rewrite(key, change):
            head = self.server.client.head(partials, key)
            body = change(self.server.client.get(partials, key))
            meta = {k: v for k, v in head.items() if k.startswith("x-amz-meta-")}
            st, _, _ = self.server.client.request("PUT", partials, key, headers=meta, body=body)
            self.assertEqual(st, 200)
        # Partial 1: every byte wrong (same length, same metadata): unreadable, skipped.
        rewrite(keys[1], lambda body: bytes(b ^ 0x5A for b in body))
        # Partial 2: one byte of its chunk flipped: the chunk's CRC-32C differs, its bytes are a gap.
        rewrite(keys[2], lambda body: body[:60] + bytes([body[60] ^ 0x01]) + body[61:])
        frankfurt = self.gateway("frankfurt", bucket, partials)
        out = self.recover_until_adopted(frankfurt)
        self.assertEqual(len(out["adopted"]), 1, out)
        self.assertEqual(out["adopted"][0]["skipped"], 1)
        self.assertTrue(any(keys[1] in p and "unreadable" in p for p in out["problems"]), out)
        self.assertTrue(any(keys[2] in p and "damaged (CRC-32C differs)" in p for p in out["problems"]), out)
        rec, path = self.recording_json(frankfurt)
        self.assertFalse(rec["complete"])
        self.assertIn("1 skipped", rec["incomplete_reason"])
        problems = " ".join(rec.get("spool_problems", []))
        self.assertIn("unreadable", problems)
        self.assertIn("damaged", problems)
        # Audio before the damage and after it (partials 3 and 4 stitched), none where it was lost.
        probe = probe_audio([f for f in glob.glob(path[:-5] + "*") if f.endswith(".wav")][0])
        for c in probe["channel_stats"]:
            self.assertGreater(len(c["segments"]), 1, probe)


if __name__ == "__main__":
    unittest.main()
