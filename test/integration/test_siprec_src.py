"""siprec-src against the real siprecd, end to end (issue 4).

Every test runs the real `siprec-src` binary ($SIPREC_SRC) against one or more
real `siprecd` daemons on free loopback ports and asserts on outcomes: the
client's exit status, its --verify PASS lines and --json records, the
recordings the gateway published (recording JSON fields; audio decoded with
sgw-audio-probe: which tone is on which channel, where the silence is) and,
for SRV, the answers a real DNS server (dnsmasq, started here on loopback)
gives on the wire.

Each class is one ctest test (test/integration/CMakeLists.txt) that stays well
under 120 s, so `ctest -j2` can run them side by side. Every wait is bounded;
only processes started here are stopped, by PID.
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest
from datetime import datetime, timezone

from harness import (LOOPBACK, Call, Daemon, DaemonTestCase, describe, free_port_pair,
                     siprec_body, siprec_headers, wait_until)

PROBE = os.environ.get("SGW_AUDIO_PROBE", "sgw-audio-probe")
CALLER_HZ, AGENT_HZ = 440, 1000  # siprec-src's default tones (caller leg, agent leg)
TOL_MS = 60                      # timing tolerance on a loaded 2-core CI host
# Comparisons between the gateway's clock and the client's (session length vs the
# client's 200 OK..BYE) include scheduling delays of two busy processes on a
# loaded 2-core CI machine; positions inside one recording use TOL_MS.
WALL_TOL_MS = 200


def siprec_src_path() -> str:
    path = os.environ.get("SIPREC_SRC", "")
    if not path:
        raise AssertionError("environment variable SIPREC_SRC (path of the siprec-src binary) is "
                             "not set; run through ctest or export SIPREC_SRC=/path/to/siprec-src")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"SIPREC_SRC={path!r} is not an executable file")
    return path


def dnsmasq_path() -> str:
    path = shutil.which("dnsmasq", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
    if not path:
        raise AssertionError("dnsmasq not found: install the Debian package dnsmasq-base")
    return path


def iso_ms(text: str) -> float:
    """RFC 3339 time with milliseconds (as the gateway and siprec-src write them) -> epoch ms."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp() * 1000


def probe(path: str, min_segment_ms: int = 60) -> dict:
    out = subprocess.run([PROBE, path, "--min-segment-ms", str(min_segment_ms)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)


def recordings(folder: str) -> dict[str, list[tuple[str, dict]]]:
    """Published recording JSON documents under `folder`, by conversation id."""
    out: dict[str, list[tuple[str, dict]]] = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.json"), recursive=True)):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue  # published atomically, so this is not a recording document
        out.setdefault(doc.get("conversation_id"), []).append((path, doc))
    return out


def audio_path(json_path: str, doc: dict, index: int = 0) -> str:
    return os.path.join(os.path.dirname(json_path), doc["audio"][index]["file"])


def participant(doc: dict, aor: str) -> dict | None:
    for p in doc["participants"]:
        if p["aor"] == aor:
            return p
    return None


def event_ms(doc: dict, prefix: str) -> float | None:
    """Offset from start_time of the first gateway event whose text starts with prefix."""
    for e in doc["events"]:
        if e["what"].startswith(prefix):
            return iso_ms(e["time"]) - iso_ms(doc["start_time"])
    return None


# ---------------------------------------------------------------------------
# Running siprec-src

class SrcRun:
    """One finished siprec-src run: exit code, output, and its --json document."""

    def __init__(self, argv: list[str], rc: int, out: str, err: str, summary: dict | None):
        self.argv, self.rc, self.out, self.err, self.json = argv, rc, out, err, summary

    @property
    def records(self) -> list[dict]:
        return self.json["records"] if self.json else []

    def lines(self, prefix: str) -> list[str]:
        return [ln for ln in self.out.splitlines() if ln.startswith(prefix)]

    def describe(self) -> str:
        return (f"--- siprec-src {' '.join(self.argv[1:])}\n--- exit code: {self.rc}\n"
                f"--- stdout:\n{self.out[-4000:]}\n--- stderr:\n{self.err[-3000:]}")


LSAN_SOFIA_TLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan-sofia-tls.supp")


def src_env(target: str, args) -> dict:
    """siprec-src's environment. Over TLS it uses sofia-sip's TLS transport, whose OpenSSL objects
    sofia never frees (lsan-sofia-tls.supp): under ASan those leaks are suppressed by the sofia
    frames that made them, which needs the full (slow) unwinder. Ignored by non-ASan builds."""
    env = dict(os.environ)
    if target.startswith("sips:") or any(str(a).startswith("--tls") for a in args):
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "fast_unwind_on_malloc=0"]))
        env["LSAN_OPTIONS"] = ":".join(filter(None, [env.get("LSAN_OPTIONS"), f"suppressions={LSAN_SOFIA_TLS}"]))
    return env


class SrcMixin:
    """Runs siprec-src and checks what it says; needs self.tmp (a scratch folder)."""

    tmp: str

    def run_src(self, target: str, *args: str, timeout: float = 90.0) -> SrcRun:
        json_path = os.path.join(self.tmp, f"src-{random.getrandbits(40):x}.json")
        argv = [siprec_src_path(), target, "--json", json_path, *args]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout, env=src_env(target, args))  # kills it on timeout
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"siprec-src did not finish within {timeout}s: {' '.join(argv)}\n"
                                 f"{e.stdout or ''}{e.stderr or ''}")
        summary = None
        if os.path.exists(json_path):
            with open(json_path) as f:
                summary = json.load(f)
            os.unlink(json_path)
        return SrcRun(argv, p.returncode, p.stdout, p.stderr, summary)

    def diag(self, run: SrcRun | None, msg: str) -> str:
        text = msg + ("\n" + run.describe() if run else "")
        for d in self.daemons():
            text += "\n" + d.diagnostics(30)
        return text

    def daemons(self) -> list[Daemon]:
        return []

    def assertVerified(self, run: SrcRun, calls: int):
        """Exit 0, every call ok, one PASS line per call naming its Call-ID and conversation."""
        self.assertEqual(run.rc, 0, self.diag(run, "siprec-src must exit 0"))
        self.assertIsNotNone(run.json, self.diag(run, "no --json output"))
        self.assertEqual((run.json["calls"], run.json["ok"], run.json["failed"]), (calls, calls, 0),
                         self.diag(run, "calls/ok/failed"))
        self.assertEqual(run.json["verify"], {"checked": calls, "passed": calls},
                         self.diag(run, "verify summary"))
        self.assertIn(f"verify: {calls} of {calls} passed", run.out, self.diag(run, "verify line"))
        passes = run.lines("PASS ")
        self.assertEqual(len(passes), calls, self.diag(run, "one PASS line per call"))
        self.assertEqual(run.lines("FAIL "), [], self.diag(run, "FAIL lines"))
        for rec in run.records:
            self.assertEqual(rec["status"], "ok", self.diag(run, f"record {rec['index']}"))
            line = f"PASS {rec['call_id']} conversation={rec['conversation_id']} "
            self.assertTrue(any(p.startswith(line) for p in passes),
                            self.diag(run, f"no PASS line starting {line!r}"))
            self.assertTrue(rec["verify"].startswith("PASS "), rec["verify"])

    def only_recording(self, folder: str, rec: dict, run: SrcRun | None = None) -> tuple[str, dict]:
        """The single recording of a siprec-src call (by conversation id) in folder, checked
        against the call's record: conversation id, recording Call-ID, both participants."""
        found = recordings(folder).get(rec["conversation_id"], [])
        self.assertEqual(len(found), 1, self.diag(run, f"recordings of {rec['conversation_id']} "
                                                        f"in {folder}: {[p for p, _ in found]}"))
        path, doc = found[0]
        self.assertEqual(doc["conversation_id"], rec["conversation_id"])
        self.assertEqual(doc["recording_call_id"], rec["call_id"])
        self.assertTrue(doc["complete"], doc["incomplete_reason"])
        caller = participant(doc, rec["caller"]["aor"])
        agent = participant(doc, rec["agent"]["aor"])
        self.assertIsNotNone(caller, f"caller {rec['caller']['aor']} not in {doc['participants']}")
        self.assertIsNotNone(agent, f"agent {rec['agent']['aor']} not in {doc['participants']}")
        self.assertEqual((caller["role"], caller["channel"]), ("caller", 0), caller)
        self.assertEqual((agent["role"], agent["channel"]), ("agent", 1), agent)
        return path, doc

    def assertTones(self, audio: str, length_ms: float, what: str, rate: int | None = None):
        """Caller's tone on the left channel, agent's on the right, each sounding ~length_ms."""
        p = probe(audio)
        if rate is not None:
            self.assertEqual(p["sample_rate"], rate, f"{what}: {p}")
        self.assertEqual(p["channels"], 2, f"{what}: {p}")
        for ch, hz in zip(p["channel_stats"], (CALLER_HZ, AGENT_HZ)):
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15, msg=f"{what}: {ch}")
            self.assertAlmostEqual(ch["active_ms"], length_ms, delta=2 * TOL_MS, msg=f"{what}: {ch}")
        return p


class SrcTestCase(SrcMixin, DaemonTestCase):
    """One siprecd per class (DaemonTestCase) plus a scratch folder for --json files."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="siprec-src-it-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def daemons(self):
        return [self.daemon]

    def target(self, transport: str = "udp") -> str:
        return f"sip:{LOOPBACK}:{self.daemon.sip_port};transport={transport}"

    def call(self, *args: str, transport: str = "udp", duration: str = "2", calls: int = 1):
        """One verified siprec-src run against this class's daemon; returns (run, its one record)."""
        run = self.run_src(self.target(transport), "--duration", duration,
                           "--verify", self.daemon.recordings_dir, *args)
        self.assertVerified(run, calls)
        return run, run.records[0]


# ---------------------------------------------------------------------------
# Metadata dialects

# dialect -> (the gateway's name for what it parsed, the rule that must decide the roles)
DIALECTS = {
    "rfc7865": ("rfc7865", "role-field:purpose"),
    "acme": ("draft", "extension:callingParty="),
    "audiocodes": ("draft", "metadata-order"),
    "broadworks": ("siprec-legacy", "metadata-order"),
    "legacy": ("siprec-legacy", "metadata-order"),
    "ribbon": ("rfc7865", "calldata-from"),
    "avaya": ("rfc7865", "metadata-order"),
    "cisco": ("cisco-headers", "metadata-order"),
}


class SrcDialectTest(SrcTestCase):
    """Each metadata dialect siprec-src emits is understood by the gateway. The body's own
    conversation id rules come first, so the id is read from each dialect's extension data
    (Cisco sends no body: its id comes from the header)."""

    CONFIG = {"node": {"name": "gw-dialects"},
              "metadata": {"conversation_id_rules": [
                  "extension:session:GenesysConversationID",
                  "extension:group:GenesysConversationID",
                  "extension:any:GenesysConversationID",
                  "extension:any:ConversationID",
                  "header:X-GenesysConversationID"]}}

    def test_each_dialect(self):
        for dialect, (parsed_as, role_rule) in DIALECTS.items():
            with self.subTest(dialect=dialect):
                run, rec = self.call("--dialect", dialect, "--seed", "3")
                self.assertEqual(run.json["options"]["dialect"], dialect)
                path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
                if dialect == "cisco":
                    self.assertEqual(doc["metadata"]["dialect"], parsed_as, doc["metadata"])
                    self.assertEqual(doc["conversation_id_rule"], "header:X-GenesysConversationID")
                else:
                    self.assertEqual(doc["metadata"]["dialect"], parsed_as)
                    self.assertEqual(doc["metadata_errors"], [])
                    self.assertTrue(doc["conversation_id_rule"].startswith("extension:"),
                                    f"{dialect}: id not found in the body: {doc['conversation_id_rule']}")
                    self.assertEqual(len(doc["metadata_xml"]), 1)
                for p in doc["participants"]:
                    self.assertTrue(p["role_rule"].startswith(role_rule), f"{dialect}: {p}")
                self.assertEqual(len(doc["participants"]), 2, doc["participants"])
                # 20 calls on a 2-core host next to other tests: session length is
                # INVITE..BYE as the gateway saw them, under load.
                self.assertAlmostEqual(doc["duration_ms"], 2000, delta=500)


# ---------------------------------------------------------------------------
# Codecs

CODECS = {"PCMU": ("PCMU/8000", 8000), "PCMA": ("PCMA/8000", 8000), "G722": ("G722/8000", 16000),
          "G729": ("G729/8000", 8000), "opus": ("opus/48000", 16000)}


class SrcCodecTest(SrcTestCase):
    """Each codec: --verify checks each leg's tone on its channel; the probe checks it again
    independently, with the recording's sample rate."""

    def test_each_codec(self):
        for codec, (negotiated, rate) in CODECS.items():
            with self.subTest(codec=codec):
                run, rec = self.call("--codec", codec)
                self.assertIn("caller=ch0:440Hz agent=ch1:1000Hz", run.lines("PASS ")[0])
                path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
                self.assertEqual([s["codec"] for s in doc["streams"]], [negotiated] * 2)
                for s, leg in zip(doc["streams"], ("caller", "agent")):
                    self.assertEqual(s["packets_received"], rec[leg]["packets"], s)
                    self.assertEqual(s["ssrcs"], rec[leg]["ssrcs"], s)
                self.assertTones(audio_path(path, doc), 2000, codec, rate)


# ---------------------------------------------------------------------------
# Early media, timeline actions, fault injection, transports

class SrcMediaTest(SrcTestCase):

    def test_early_media_is_recorded_from_the_first_packet(self):
        run, rec = self.call("--early-media", "500")
        self.assertEqual(run.json["options"]["early_media_ms"], 500)
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        ack = event_ms(doc, "established (ACK)")
        self.assertIsNotNone(ack, doc["events"])
        for i, s in enumerate(doc["streams"]):
            first = iso_ms(s["first_packet_time"]) - iso_ms(doc["start_time"])
            # RTP flowed for ~500 ms before the ACK reached the gateway ...
            self.assertAlmostEqual(ack - first, 500, delta=150, msg=(doc["events"], s))
            # ... and none of it was dropped: every packet sent is in the recording.
            self.assertEqual(s["packets_received"], rec[("caller", "agent")[i]]["packets"], s)
            self.assertEqual(s["packets_lost"], 0, s)
        p = self.assertTones(audio_path(path, doc), 2000, "early media")
        for i, ch in enumerate(p["channel_stats"]):
            first = iso_ms(doc["streams"][i]["first_packet_time"]) - iso_ms(doc["start_time"])
            # Audio starts at the first packet, i.e. well before the ACK.
            self.assertLessEqual(ch["segments"][0]["start_ms"], first + 20, ch["segments"])
            self.assertLess(ch["segments"][0]["start_ms"], ack - 400, ch["segments"])

    def test_pause_resume_is_silence_of_the_right_length(self):
        run, rec = self.call("--timeline", "pause@1s,resume@2s", duration="3")
        self.assertAlmostEqual(rec["silent_ms"], 1000, delta=30, msg=rec)
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        for i, label in enumerate(("1", "2")):
            pauses = [g for g in doc["gaps"] if g["stream_label"] == label and g["cause"] == "pause"]
            self.assertEqual(len(pauses), 1, doc["gaps"])
            self.assertAlmostEqual(pauses[0]["length_ms"], 1000, delta=TOL_MS, msg=pauses)
            # RTP starts at the 200 OK and pauses 1 s later.
            first = iso_ms(doc["streams"][i]["first_packet_time"]) - iso_ms(doc["start_time"])
            self.assertAlmostEqual(pauses[0]["start_ms"], first + 1000, delta=TOL_MS,
                                   msg=(first, pauses))
        whats = [e["what"] for e in doc["events"]]
        self.assertIn("stream 1 paused", whats)
        self.assertIn("stream 1 resumed", whats)
        p = self.assertTones(audio_path(path, doc), 2000, "pause/resume")
        for ch in p["channel_stats"]:
            segs = ch["segments"]
            self.assertEqual(len(segs), 2, segs)
            self.assertAlmostEqual(segs[0]["end_ms"] - segs[0]["start_ms"], 1000, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["start_ms"] - segs[0]["end_ms"], 1000, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["end_ms"] - segs[1]["start_ms"], 1000, delta=TOL_MS, msg=segs)

    def test_hold_by_zero_address_is_silence_of_the_right_length(self):
        # RFC 2543 hold as BroadWorks/Metaswitch send it: re-INVITE with c=0.0.0.0 and no direction
        # attribute (siprec-src hold-zero), then a normal re-offer (resume).
        run, rec = self.call("--timeline", "hold-zero@1s,resume@2s", duration="3")
        self.assertAlmostEqual(rec["silent_ms"], 1000, delta=30, msg=rec)
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertTrue(doc["complete"], doc)
        whats = [e["what"] for e in doc["events"]]
        self.assertIn("stream 1 held", whats)
        self.assertIn("stream 2 held", whats)
        self.assertIn("stream 1 resumed", whats)
        self.assertFalse([w for w in whats if "timeout" in w], whats)
        for i, label in enumerate(("1", "2")):
            holds = [g for g in doc["gaps"] if g["stream_label"] == label and g["cause"] == "hold"]
            self.assertEqual(len(holds), 1, doc["gaps"])
            self.assertAlmostEqual(holds[0]["length_ms"], 1000, delta=TOL_MS, msg=holds)
        p = self.assertTones(audio_path(path, doc), 2000, "hold-zero/resume")
        for ch in p["channel_stats"]:
            segs = ch["segments"]
            self.assertEqual(len(segs), 2, segs)  # tone, exact silence, tone
            self.assertAlmostEqual(segs[0]["end_ms"] - segs[0]["start_ms"], 1000, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["start_ms"] - segs[0]["end_ms"], 1000, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["end_ms"] - segs[1]["start_ms"], 1000, delta=TOL_MS, msg=segs)

    def test_delayed_offer_is_recorded_from_the_answer_in_the_ack(self):
        # INVITE with the metadata only; the gateway offers in its 200 OK, siprec-src answers in the
        # ACK (RFC 3261 §13.2.1) and sends each leg's tone to the port of the offer's labelled stream.
        run, rec = self.call("--delayed-offer")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertTrue(doc["complete"], doc)
        whats = [e["what"] for e in doc["events"]]
        self.assertIn("SDP answer in the ACK: 2 stream(s) to record", whats)
        self.assertEqual([s["label"] for s in doc["streams"]], ["1", "2"], doc["streams"])
        for s, leg in zip(doc["streams"], ("caller", "agent")):
            self.assertEqual(s["packets_received"], rec[leg]["packets"], s)
        self.assertTones(audio_path(path, doc), 2000, "delayed offer")

    def test_transfer_updates_the_participants(self):
        run, rec = self.call("--timeline", "transfer@1s")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        first = participant(doc, rec["agent"]["aor"])
        second_aor = rec["agent"]["aor"].replace("@", "-b@")  # sip:agent-N-b@... (docs/siprec-src.md)
        second = participant(doc, second_aor)
        caller = participant(doc, rec["caller"]["aor"])
        self.assertIsNotNone(second, f"{second_aor} not in {doc['participants']}")
        self.assertEqual(len(doc["participants"]), 3, doc["participants"])
        self.assertEqual(second["role"], "agent", second)
        # The new agent sends the agent stream too: it is placed on the agent channel.
        self.assertEqual((first["channel"], second["channel"], caller["channel"]), (1, 1, 0),
                         doc["participants"])
        # The first agent left exactly when the second joined, ~1 s into the call; the
        # second and the caller are still there at the end.
        self.assertIsNotNone(first["leave_time"], first)
        self.assertIsNone(second["leave_time"], second)
        self.assertIsNone(caller["leave_time"], caller)
        self.assertEqual(first["leave_time"], second["join_time"])
        self.assertAlmostEqual(iso_ms(second["join_time"]) - iso_ms(first["join_time"]), 1000,
                               delta=300, msg=(first, second))
        self.assertEqual(len(doc["metadata_xml"]), 2, "INVITE and the transfer re-INVITE")
        self.assertIn(second_aor, doc["metadata_xml"][1]["xml"])
        self.assertNotIn(second_aor, doc["metadata_xml"][0]["xml"])
        # The agent channel keeps the agent leg's tone through the transfer.
        self.assertTones(audio_path(path, doc), 2000, "transfer")

    def test_loss_and_reordering_are_reported_and_duration_is_exact(self):
        run, rec = self.call("--loss", "0.05", "--reorder", "0.05", "--seed", "7", duration="3")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        injected = 0
        for s, leg in zip(doc["streams"], ("caller", "agent")):
            sent, lost = rec[leg]["packets"], rec[leg]["lost_injected"]
            injected += lost
            # What was sent arrived; what was never sent is counted lost, packet for packet.
            self.assertEqual(s["packets_received"], sent, (s, rec[leg]))
            self.assertEqual(s["packets_lost"], lost, (s, rec[leg]))
            self.assertEqual(s["packets_duplicated"], 0, s)
        self.assertGreater(injected, 0, rec)
        self.assertAlmostEqual(doc["duration_ms"], 3000, delta=WALL_TOL_MS)
        p = probe(audio_path(path, doc))
        self.assertAlmostEqual(p["duration_ms"], doc["duration_ms"], delta=2)
        self.assertEqual(doc["audio"][0]["duration_ms"], doc["duration_ms"])
        for i, (ch, hz) in enumerate(zip(p["channel_stats"], (CALLER_HZ, AGENT_HZ))):
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15, msg=ch)
            first = iso_ms(doc["streams"][i]["first_packet_time"]) - iso_ms(doc["start_time"])
            self.assertLessEqual(ch["segments"][0]["start_ms"], first + 20, ch["segments"])
            span = ch["segments"][-1]["end_ms"] - ch["segments"][0]["start_ms"]
            self.assertAlmostEqual(span, 3000, delta=TOL_MS, msg=ch["segments"])

    def check_transport(self, transport: str):
        run, rec = self.call(transport=transport, duration="1.5")
        self.assertEqual(rec["target"], f"{transport}:{LOOPBACK}:{self.daemon.sip_port}")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertTrue(any(f" over {transport}," in e["what"] for e in doc["events"]), doc["events"])
        self.assertTones(audio_path(path, doc), 1500, transport)

    def test_udp(self):
        self.check_transport("udp")

    def test_tcp(self):
        self.check_transport("tcp")


# ---------------------------------------------------------------------------
# A small load run

class SrcLoadTest(SrcTestCase):

    def test_twenty_calls_ten_at_a_time(self):
        run = self.run_src(self.target(), "--calls", "20", "--concurrency", "10", "--rate", "10",
                           "--duration", "2", "-q", "--verify", self.daemon.recordings_dir)
        self.assertVerified(run, 20)
        j = run.json
        self.assertEqual(j["failures"], {})
        self.assertFalse(j["wall_limit_hit"])
        setup = j["setup_ms"]
        self.assertEqual(setup["count"], 20, setup)
        for k in ("p50", "p90", "p99", "max", "mean"):
            self.assertIsInstance(setup[k], (int, float), setup)
        self.assertTrue(0 < setup["p50"] <= setup["p90"] <= setup["p99"] <= setup["max"], setup)
        self.assertIn("setup latency (INVITE -> 200 OK, 20 calls): p50 ", run.out)
        # 2 legs x 2 s of 20 ms packets per call.
        self.assertEqual(j["rtp_packets_sent"],
                         sum(r[leg]["packets"] for r in j["records"] for leg in ("caller", "agent")))
        # About 2 legs x 2 s of 20 ms packets per call; the sender stops at the BYE, so on a
        # loaded host a late last tick may miss a packet or two per call.
        self.assertGreaterEqual(j["rtp_packets_sent"], 20 * 2 * 100 * 0.95)
        # 20 recordings, one per call, each with its own conversation id.
        by_conv = recordings(self.daemon.recordings_dir)
        convs = {r["conversation_id"] for r in j["records"]}
        self.assertEqual(len(convs), 20)
        self.assertTrue(convs <= set(by_conv), convs - set(by_conv))
        for r in j["records"]:
            self.assertEqual(len(by_conv[r["conversation_id"]]), 1)
        self.assertGreaterEqual(self.daemon.metrics().get("sgw_invites_total", code="200"), 20)


# ---------------------------------------------------------------------------
# DNS SRV against a real DNS server

def dns_query(port: int, name: str, qtype: int, timeout: float = 1.0) -> list[tuple]:
    """One DNS query over UDP to 127.0.0.1:port; the answer section as tuples:
    SRV (33) -> (priority, weight, port, target); A (1) -> (address,)."""
    qid = random.getrandbits(16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, (LOOPBACK, port))
        msg, _ = s.recvfrom(4096)
    finally:
        s.close()

    def read_name(off: int) -> tuple[str, int]:
        labels, end, jumps = [], None, 0
        while True:
            n = msg[off]
            if n & 0xC0 == 0xC0:  # RFC 1035 §4.1.4 compression pointer
                if end is None:
                    end = off + 2
                off = ((n & 0x3F) << 8) | msg[off + 1]
                jumps += 1
                if jumps > 20:
                    raise ValueError("DNS name pointer loop")
                continue
            if n == 0:
                return ".".join(labels), (end if end is not None else off + 1)
            labels.append(msg[off + 1:off + 1 + n].decode())
            off += 1 + n

    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if rid != qid:
        raise AssertionError(f"DNS answer id {rid} != query id {qid}")
    if flags & 0x000F:
        raise AssertionError(f"DNS rcode {flags & 0xF} for {name}")
    off = 12
    for _ in range(qd):
        _, off = read_name(off)
        off += 4
    out = []
    for _ in range(an):
        _, off = read_name(off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        if rtype == 33:
            prio, weight, port_ = struct.unpack(">HHH", msg[off:off + 6])
            out.append((prio, weight, port_, read_name(off + 6)[0]))
        elif rtype == 1:
            out.append((socket.inet_ntoa(msg[off:off + 4]),))
        off += rdlen
    return out


class Dnsmasq:
    """dnsmasq on 127.0.0.1:<free port> serving only the records given; logs queries."""

    def __init__(self, records: list[str]):
        self.port = free_port_pair()
        self.tmp = tempfile.mkdtemp(prefix="siprec-src-dns-")
        self.log_path = os.path.join(self.tmp, "dnsmasq.log")
        self.argv = [dnsmasq_path(), "--keep-in-foreground", f"--port={self.port}",
                     f"--listen-address={LOOPBACK}", "--bind-interfaces", "--no-resolv",
                     "--no-hosts", "--no-poll", "--pid-file=", "--conf-file=/dev/null",
                     "--log-facility=-", "--log-queries", "--local=/test/", "--cache-size=0",
                     *records]
        self.proc: subprocess.Popen | None = None

    def start(self, probe_name: str):
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dnsmasq exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if dns_query(self.port, probe_name, 33, timeout=0.2):
                    return self
            except (OSError, AssertionError):
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"dnsmasq did not answer within 10 s:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)
        shutil.rmtree(self.tmp, ignore_errors=True)


DOWN_HOST = "127.0.0.2"  # the priority-10 gateway's address: nothing listens there


class SrcSrvFailoverTest(SrcTestCase):
    """recorder.test: priority 10 -> a port where nothing listens, priority 20 -> siprecd.
    Calls to sip:recorder.test find both by SRV, fail fast on the first (ICMP port
    unreachable / TCP reset) and land on the second."""

    CONFIG = {"node": {"name": "gw-second"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.down_port = free_port_pair()
            up = cls.daemon.sip_port
            records = []
            for proto in ("udp", "tcp"):
                records += [f"--srv-host=_sip._{proto}.recorder.test,gw1.recorder.test,{cls.down_port},10,100",
                            f"--srv-host=_sip._{proto}.recorder.test,gw2.recorder.test,{up},20,100"]
            records += [f"--host-record=gw1.recorder.test,{DOWN_HOST}",
                        f"--host-record=gw2.recorder.test,{LOOPBACK}"]
            cls.dns = Dnsmasq(records).start("_sip._udp.recorder.test")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        dns = getattr(cls, "dns", None)
        if dns is not None:
            dns.stop()
        super().tearDownClass()

    def test_dns_answers_on_the_wire(self):
        up = self.daemon.sip_port
        for proto in ("udp", "tcp"):
            srv = sorted(dns_query(self.dns.port, f"_sip._{proto}.recorder.test", 33))
            self.assertEqual(srv, [(10, 100, self.down_port, "gw1.recorder.test"),
                                   (20, 100, up, "gw2.recorder.test")])
        self.assertEqual(dns_query(self.dns.port, "gw1.recorder.test", 1), [(DOWN_HOST,)])
        self.assertEqual(dns_query(self.dns.port, "gw2.recorder.test", 1), [(LOOPBACK,)])

    def check_failover(self, transport: str):
        before = self.dns.log().count(f"query[SRV] _sip._{transport}.recorder.test")
        run = self.run_src(f"sip:recorder.test;transport={transport}",
                           "--dns-server", f"{LOOPBACK}:{self.dns.port}", "--calls", "2",
                           "--rate", "5", "--duration", "1", "--invite-timeout-ms", "2000",
                           "--verify", self.daemon.recordings_dir)
        self.assertVerified(run, 2)
        down = f"{transport}:{DOWN_HOST}:{self.down_port}"
        up = f"{transport}:{LOOPBACK}:{self.daemon.sip_port}"
        # Resolved by SRV, in priority order ...
        self.assertEqual(run.json["targets"], [down, up], run.describe())
        self.assertIn(f"siprec-src: sip:recorder.test;transport={transport} -> {down}, {up}", run.out)
        after = self.dns.log().count(f"query[SRV] _sip._{transport}.recorder.test")
        self.assertGreater(after, before, "siprec-src did not ask the DNS server:\n" + self.dns.log())
        # ... the first call tried the dead gateway first, then the second; the next call
        # skipped the target that just failed.
        r0, r1 = run.records
        self.assertEqual(r0["targets_tried"], [down, up], r0["events"])
        self.assertEqual(r1["targets_tried"], [up], r1["events"])
        for r in run.records:
            self.assertEqual(r["target"], up)
            path, doc = self.only_recording(self.daemon.recordings_dir, r, run)
            self.assertEqual(doc["gateway"]["node"], "gw-second")
            self.assertTrue(os.path.realpath(path).startswith(
                os.path.realpath(self.daemon.recordings_dir) + os.sep), path)

    def test_bare_uri_looks_up_every_transport(self):
        # No ;transport=: _sip._udp and _sip._tcp are both looked up; RFC 3263 §4.1 tries the
        # transports in order of preference (UDP, then TCP; docs/sip-client.md), each in SRV order.
        run = self.run_src("sip:recorder.test", "--dns-server", f"{LOOPBACK}:{self.dns.port}",
                           "--duration", "1", "--invite-timeout-ms", "2000",
                           "--verify", self.daemon.recordings_dir)
        self.assertVerified(run, 1)
        down = [f"{t}:{DOWN_HOST}:{self.down_port}" for t in ("udp", "tcp")]
        up = [f"{t}:{LOOPBACK}:{self.daemon.sip_port}" for t in ("udp", "tcp")]
        self.assertEqual(run.json["targets"], [down[0], up[0], down[1], up[1]], run.describe())
        rec = run.records[0]
        self.assertEqual(rec["targets_tried"], [down[0], up[0]], rec["events"])
        _, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertEqual(doc["gateway"]["node"], "gw-second")

    def test_udp_srv_failover(self):
        self.check_failover("udp")

    def test_tcp_srv_failover(self):
        self.check_failover("tcp")


# ---------------------------------------------------------------------------
# Two gateways: 503 + Retry-After, and re-establishing after a crash

class TwoGatewayTestCase(SrcMixin, unittest.TestCase):
    FIRST: dict = {}
    SECOND: dict = {}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="siprec-src-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.gw = []
        for cfg in (self.FIRST, self.SECOND):
            d = Daemon(config=cfg)
            self.addCleanup(d.cleanup)
            d.start()
            self.gw.append(d)

    def daemons(self):
        return self.gw

    def targets(self) -> str:
        return ",".join(f"sip:{LOOPBACK}:{d.sip_port}" for d in self.gw)

    def target_name(self, d: Daemon) -> str:
        return f"udp:{LOOPBACK}:{d.sip_port}"

    def stop_all(self):
        for d in self.gw:
            if d.alive():
                self.assertEqual(d.stop(), 0, d.diagnostics())


class SrcOverloadTest(TwoGatewayTestCase):
    """The first gateway is full (sip.max_sessions 1, in use): it answers 503 with
    Retry-After, and the calls land on the second gateway."""

    FIRST = {"node": {"name": "gw-full"}, "sip": {"max_sessions": 1, "retry_after_s": 5}}
    SECOND = {"node": {"name": "gw-spare"}}

    def test_503_with_retry_after_moves_to_the_next_target(self):
        full, spare = self.gw
        with full.client("udp") as c:
            occupier = Call(c)
            body, ctype = siprec_body()
            r = occupier.invite(body, ctype, siprec_headers())
            self.assertEqual(r.status if r else None, 200, describe(r))
            run = self.run_src(self.targets(), "--calls", "2", "--rate", "5", "--duration", "1",
                               "--verify", spare.recordings_dir)
            self.assertEqual(occupier.bye().status, 200)
        self.assertVerified(run, 2)
        r0, r1 = run.records
        self.assertEqual(r0["targets_tried"], [self.target_name(full), self.target_name(spare)],
                         r0["events"])
        self.assertTrue(any("503" in e for e in r0["events"]), r0["events"])
        # Retry-After: 5 -> the next call (200 ms later) tries the full gateway last, so
        # goes straight to the spare.
        self.assertEqual(r1["targets_tried"], [self.target_name(spare)], r1["events"])
        self.assertGreaterEqual(full.metrics().get("sgw_invites_total", code="503"), 1)
        for r in run.records:
            self.assertEqual(r["target"], self.target_name(spare))
            _, doc = self.only_recording(spare.recordings_dir, r, run)
            self.assertEqual(doc["gateway"]["node"], "gw-spare")
        convs = {r["conversation_id"] for r in run.records}
        self.assertFalse(convs & set(recordings(full.recordings_dir)), "recorded on the full gateway")
        self.stop_all()


class SrcReestablishTest(TwoGatewayTestCase):
    """kill -9 of the recording gateway mid-call: with --reestablish siprec-src moves the
    recording session to the next target with the same conversation and session ids; the
    first gateway's part is recovered from its spool on restart."""

    FIRST = {"node": {"name": "gw-a"}}
    SECOND = {"node": {"name": "gw-b"}}

    def test_kill9_mid_call_continues_on_the_second_gateway(self):
        a, b = self.gw
        json_path = os.path.join(self.tmp, "re.json")
        argv = [siprec_src_path(), self.targets(), "--reestablish", "--duration", "5",
                "--verify", b.recordings_dir, "--json", json_path]
        out_path = os.path.join(self.tmp, "re.out")
        with open(out_path, "wb") as out:
            src = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            self.assertTrue(wait_until(lambda: a.metrics().get("sgw_active_sessions") >= 1, 10),
                            a.diagnostics())
            time.sleep(2.0)  # ~2 s of audio on the first gateway
            kill_wall_ms = time.time() * 1000
            a.send_signal(signal.SIGKILL)
            a.wait_exit(10)
            rc = src.wait(60)
        finally:
            if src.poll() is None:
                src.kill()
                src.wait(5)
        with open(out_path) as f:
            out = f.read()
        summary = None
        if os.path.exists(json_path):
            with open(json_path) as f:
                summary = json.load(f)
        run = SrcRun(argv, rc, out, "", summary)
        self.assertVerified(run, 1)
        rec = run.records[0]
        self.assertEqual(rec["fragments"], 2, rec["events"])
        self.assertEqual(rec["targets_tried"], [self.target_name(a), self.target_name(b)], rec["events"])
        self.assertEqual(rec["target"], self.target_name(b))
        self.assertTrue(any("gateway lost" in e for e in rec["events"]), rec["events"])
        self.assertTrue(any("re-establishing: INVITE" in e for e in rec["events"]), rec["events"])

        # The second gateway recorded the rest of the call under the same conversation.
        found = recordings(b.recordings_dir).get(rec["conversation_id"], [])
        self.assertEqual(len(found), 1, self.diag(run, "recordings on the second gateway"))
        path_b, doc_b = found[0]
        self.assertEqual(doc_b["gateway"]["node"], "gw-b")
        self.assertTrue(doc_b["complete"], doc_b)
        for leg, role, ch in (("caller", "caller", 0), ("agent", "agent", 1)):
            p = participant(doc_b, rec[leg]["aor"])
            self.assertIsNotNone(p, doc_b["participants"])
            self.assertEqual((p["role"], p["channel"]), (role, ch), p)
        # Timing from siprec-src's own event log: "<ms>ms <what>".
        t = {}
        for e in rec["events"]:
            ms, _, what = e.partition("ms ")
            for key in ("200 OK", "gateway lost", "BYE"):
                if what.startswith(key):
                    t.setdefault(key, []).append(int(ms))
        first_ok, second_ok = t["200 OK"][:2]
        lost, bye = t["gateway lost"][0], t["BYE"][0]
        self.assertAlmostEqual(bye - first_ok, 5000, delta=WALL_TOL_MS, msg=rec["events"])
        self.assertLess(second_ok - lost, 500, rec["events"])
        self.assertAlmostEqual(doc_b["duration_ms"], bye - second_ok, delta=WALL_TOL_MS,
                               msg=(doc_b["duration_ms"], rec["events"]))
        self.assertTones(audio_path(path_b, doc_b), doc_b["duration_ms"], "after re-establishing")

        # Restart the first gateway on its folders: its part comes back from the spool with
        # the same conversation and communication-session identifiers.
        self.assertEqual(recordings(a.recordings_dir), {})
        a2 = Daemon(config=self.FIRST)
        self.addCleanup(a2.cleanup)
        a2.recordings_dir, a2.spool_dir = a.recordings_dir, a.spool_dir
        a2.start()
        self.gw[0] = a2
        got = wait_until(lambda: recordings(a.recordings_dir).get(rec["conversation_id"]), 15)
        self.assertTrue(got, a2.diagnostics())
        _, doc_a = got[0]
        self.assertEqual(doc_a["gateway"]["node"], "gw-a")
        self.assertFalse(doc_a["complete"], doc_a)
        self.assertEqual(doc_a["siprec_session_id"], doc_b["siprec_session_id"])
        self.assertEqual([s["session_id"] for s in doc_a["communication_sessions"]],
                         [s["session_id"] for s in doc_b["communication_sessions"]])
        self.assertEqual([s["sip_session_ids"] for s in doc_a["communication_sessions"]],
                         [s["sip_session_ids"] for s in doc_b["communication_sessions"]])
        # Recorded until the kill, less at most the fsync cadence (1 s).
        until_kill = kill_wall_ms - iso_ms(doc_a["start_time"])
        self.assertGreaterEqual(doc_a["duration_ms"], until_kill - 1000 - TOL_MS,
                                (doc_a["duration_ms"], until_kill))
        self.assertLessEqual(doc_a["duration_ms"], until_kill + TOL_MS,
                             (doc_a["duration_ms"], until_kill))
        self.stop_all()


if __name__ == "__main__":
    unittest.main()
