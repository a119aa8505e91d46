"""Fragments of one conversation joined (issue 11 item 3, docs/failover.md): two gateways
("london" and "frankfurt") each record a fragment of one conversation (same conversation id,
as an SRC that re-establishes sends it); every recording JSON says fragment_of;
`siprecd conversation ID` lists the fragments in time order with node, region, covered
intervals, the gap between them with its cause and the coverage; `--stitch` writes one audio
file whose decoded tones are on the right channel on both sides with the gap silent and
stated. A corrupt fragment is reported and skipped (never stitched); a hostile conversation
id reaches nothing outside the folders given."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

from harness import (Daemon, answered_call_recording, metadata_xml, multipart, probe_audio, sdp, siprec_headers,
                     siprecd_path, wait_until, GENESYS_CONVERSATION_ID)
from test_recording import streams_for

TOL_MS = 25
CALLER_HZ, AGENT_HZ = 440, 1000


def headers_for(conversation_id):
    return [(n, conversation_id if v == GENESYS_CONVERSATION_ID else v) for n, v in siprec_headers()]


def record_fragment(test, d, conversation_id, tone_ms):
    """One recording session on gateway d with the conversation's id: caller 440 Hz on
    label 1, agent 1000 Hz on label 2, for tone_ms; returns (json path, document)."""
    def invite(call):
        return call.invite(multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                                      ("application/rs-metadata+xml",
                                       metadata_xml(2, conversation_id=conversation_id))]),
                           'multipart/mixed;boundary="OSS-unique-boundary-42"', headers_for(conversation_id))
    _, path, doc = answered_call_recording(test, d, invite, (CALLER_HZ, AGENT_HZ), tone_ms, timeout=20)
    return path, doc


def conversation(*args):
    out = subprocess.run([siprecd_path(), "conversation", *args], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout, out.stderr


def sounding(ch):
    return [(s["start_ms"], s["end_ms"]) for s in ch["segments"]]


class FragmentsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.gws = []
        for node, region in (("london", "eu-west-2"), ("frankfurt", "eu-central-1")):
            d = Daemon(config={"node": {"name": node, "region": region}})
            d.start()
            cls.gws.append(d)
        cls.conv = str(uuid.uuid4())
        t = cls()
        cls.frag_a = record_fragment(t, cls.gws[0], cls.conv, 2000)
        time.sleep(1.0)  # the SRC's failover: nobody records this second
        cls.frag_b = record_fragment(t, cls.gws[1], cls.conv, 2000)

    @classmethod
    def tearDownClass(cls):
        for d in cls.gws:
            try:
                d.stop()
            finally:
                d.cleanup()

    def dirs(self):
        return [a for d in self.gws for a in ("--dir", d.recordings_dir)]

    def test_every_fragment_says_fragment_of(self):
        for _, doc in (self.frag_a, self.frag_b):
            self.assertEqual(doc["fragment_of"], self.conv)
            self.assertIn("previous_fragment", doc)
            self.assertIsNone(doc["previous_fragment"])  # each node has only its own

    def test_conversation_lists_fragments_gap_and_coverage_and_stitches_tones_on_the_right_channels(self):
        a, b = self.frag_a[1], self.frag_b[1]
        out_dir = tempfile.mkdtemp(prefix="sgw-stitch-")
        self.addCleanup(shutil.rmtree, out_dir, True)
        wav = os.path.join(out_dir, "conv.wav")
        rc, stdout, stderr = conversation(self.conv, *self.dirs(), "--json", "--stitch", wav)
        self.assertEqual(rc, 0, stdout + stderr)
        doc = json.loads(stdout)
        frags = doc["fragments"]
        self.assertEqual([f["recording_id"] for f in frags], [a["recording_id"], b["recording_id"]])
        self.assertEqual([(f["node"], f["region"]) for f in frags],
                         [("london", "eu-west-2"), ("frankfurt", "eu-central-1")])
        self.assertEqual(doc["skipped"], [])
        # Wall time: A's start to B's end; the gap between them is stated with its cause.
        from harness import iso_ms
        a0, a1 = iso_ms(a["start_time"]), iso_ms(a["start_time"]) + a["duration_ms"]
        b0, b1 = iso_ms(b["start_time"]), iso_ms(b["start_time"]) + b["duration_ms"]
        self.assertEqual(doc["wall_ms"], b1 - a0)
        between = [g for g in doc["gaps"] if g["cause"] == "between_fragments"]
        self.assertEqual(len(between), 1, doc["gaps"])
        self.assertEqual(between[0]["start_ms"], a1 - a0)
        self.assertEqual(between[0]["length_ms"], b0 - a1)
        self.assertGreaterEqual(between[0]["length_ms"], 1000)
        self.assertIn(a["recording_id"], between[0]["detail"])
        # Coverage: what the fragments cover over the wall time, as computed from the gaps.
        self.assertEqual(doc["covered_ms"] + sum(g["length_ms"] for g in doc["gaps"]), doc["wall_ms"])
        self.assertAlmostEqual(doc["coverage_percent"], 100.0 * doc["covered_ms"] / doc["wall_ms"], delta=0.01)
        self.assertGreater(doc["coverage_percent"], 70.0)
        # The stitch's JSON states the same gap as silence and names each side's source.
        with open(os.path.join(out_dir, "conv.json")) as f:
            st = json.load(f)
        sources = [s.get("source") for s in st["segments"] if not s.get("gap")]
        self.assertEqual(sources[0], a["recording_id"])
        self.assertEqual(sources[-1], b["recording_id"])
        gap_segs = [s for s in st["segments"] if s.get("gap") and s["cause"] == "between_fragments"]
        self.assertEqual([(s["start_ms"], s["length_ms"]) for s in gap_segs], [(a1 - a0, b0 - a1)])
        self.assertEqual(gap_segs[0]["silence_frames"], (b0 - a0) * 8 - (a1 - a0) * 8)
        # Decoded: caller's tone left, agent's right, on both sides; silence in between.
        p = probe_audio(wav, 60, window_ms=5, freq_tolerance_hz=0)
        self.assertEqual(p["channel_stats"][0]["dominant_hz"] // 10, CALLER_HZ // 10, p)
        self.assertEqual(p["channel_stats"][1]["dominant_hz"] // 10, AGENT_HZ // 10, p)
        self.assertAlmostEqual(p["duration_ms"], doc["wall_ms"], delta=2)
        pa = probe_audio(self.frag_a[0][:-5] + ".wav", 60, window_ms=5, freq_tolerance_hz=0)
        pb = probe_audio(self.frag_b[0][:-5] + ".wav", 60, window_ms=5, freq_tolerance_hz=0)
        for ch in (0, 1):
            segs = sounding(p["channel_stats"][ch])
            self.assertEqual(len(segs), 2, f"channel {ch}: {segs}")
            (sa, ea), (sb, eb) = segs
            fa, fb = sounding(pa["channel_stats"][ch])[0], sounding(pb["channel_stats"][ch])[0]
            self.assertAlmostEqual(sa, fa[0], delta=TOL_MS)
            self.assertAlmostEqual(ea, fa[1], delta=TOL_MS)
            self.assertAlmostEqual(sb, (b0 - a0) + fb[0], delta=TOL_MS)
            self.assertAlmostEqual(eb, (b0 - a0) + fb[1], delta=TOL_MS)
            self.assertLessEqual(ea, a1 - a0 + TOL_MS)   # nothing sounds in the gap
            self.assertGreaterEqual(sb, b0 - a0 - TOL_MS)

    def test_text_output_names_nodes_and_the_gap(self):
        rc, stdout, stderr = conversation(self.conv, *self.dirs())
        self.assertEqual(rc, 0, stdout + stderr)
        self.assertIn("2 fragment(s)", stdout)
        self.assertIn("node london", stdout)
        self.assertIn("node frankfurt", stdout)
        self.assertIn("between_fragments", stdout)

    def test_truncated_fragment_is_reported_and_skipped_never_stitched(self):
        # A copy of both folders in which B's audio is cut in half.
        work = tempfile.mkdtemp(prefix="sgw-corrupt-")
        self.addCleanup(shutil.rmtree, work, True)
        dirs = []
        for i, d in enumerate(self.gws):
            dst = os.path.join(work, f"gw{i}")
            shutil.copytree(d.recordings_dir, dst)
            dirs += ["--dir", dst]
        rel = os.path.relpath(self.frag_b[0][:-5] + ".wav", self.gws[1].recordings_dir)
        bad = os.path.join(work, "gw1", rel)
        size = os.path.getsize(bad)
        with open(bad, "r+b") as f:
            f.truncate(size // 2)
        wav = os.path.join(work, "out.wav")
        rc, stdout, stderr = conversation(self.conv, *dirs, "--json", "--stitch", wav)
        self.assertEqual(rc, 0, stdout + stderr)
        doc = json.loads(stdout)
        self.assertEqual([f["recording_id"] for f in doc["fragments"]], [self.frag_a[1]["recording_id"]])
        self.assertEqual(len(doc["skipped"]), 1, doc["skipped"])
        self.assertEqual(doc["skipped"][0]["recording_id"], self.frag_b[1]["recording_id"])
        self.assertIn("truncated", doc["skipped"][0]["reason"])
        # Its time is a gap with cause fragment_unusable, silent in the stitch.
        self.assertIn("fragment_unusable", [g["cause"] for g in doc["gaps"]])
        with open(os.path.join(work, "out.json")) as f:
            st = json.load(f)
        self.assertNotIn(self.frag_b[1]["recording_id"], [s.get("source") for s in st["segments"]])
        p = probe_audio(wav, 60, window_ms=5, freq_tolerance_hz=0)
        for ch in p["channel_stats"]:
            self.assertEqual(len(ch["segments"]), 1, ch)  # only A's tone

    def test_hostile_conversation_id_reaches_nothing_outside_the_folders(self):
        # A valid fragment placed OUTSIDE the folder, claiming a path-like conversation id.
        work = tempfile.mkdtemp(prefix="sgw-hostile-")
        self.addCleanup(shutil.rmtree, work, True)
        inside = os.path.join(work, "recordings")
        outside = os.path.join(work, "outside")
        os.makedirs(inside)
        os.makedirs(outside)
        hostile = "../outside"
        doc = dict(self.frag_a[1], conversation_id=hostile, fragment_of=hostile)
        with open(os.path.join(outside, "x.json"), "w") as f:
            json.dump(doc, f)
        shutil.copy(self.frag_a[0][:-5] + ".wav", os.path.join(outside, doc["audio"][0]["file"]))
        for cid in (hostile, "../../outside", "/" + outside, "..", "../outside/x"):
            rc, stdout, stderr = conversation(cid, "--dir", inside, "--json")
            self.assertEqual(rc, 1, f"{cid}: {stdout}{stderr}")
            self.assertIn("no fragment", stderr)
        # The same file inside the folder is found: the id is compared, never a path.
        shutil.copytree(outside, os.path.join(inside, "sub"))
        rc, stdout, stderr = conversation(hostile, "--dir", inside, "--json")
        self.assertEqual(rc, 0, stdout + stderr)
        self.assertEqual(len(json.loads(stdout)["fragments"]), 1)


if __name__ == "__main__":
    unittest.main()
