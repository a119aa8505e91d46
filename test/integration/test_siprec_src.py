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

# What a recording of siprec-src is checked against: what siprec-src measured, never what was
# planned (--duration, --timeline times). On a busy machine its timers fire late, so a call carries
# more packets than --duration and a pause starts late; the gateway places every packet by its
# RTP timestamp (docs/timeline.md), so the audio is exactly what was sent, packet for packet.
FRAME_MS = 20          # siprec-src's packet interval (every codec)
# Lengths of tone and silence are measured with sgw-audio-probe in 5 ms windows (fine_probe): a
# window the tone touches sounds, so a stretch of tone measures up to one window longer than its
# packets and a silence between two stretches up to one window shorter (its edges are whole
# packets apart: at the same place in a window). With the default 20 ms windows a tone short by
# two packets could still measure as long as its packets.
FINE_WINDOW_MS = 5
# A decoder's first frames sound below the probe's silence threshold while its state builds up:
# the tone starts this much after the first packet (measured: G.729 30-35 ms, G.722 10-15 ms,
# G.711 and Opus none), so a tone may be that much shorter than its packets.
DECODER_START_MS = {"G729": 40, "G722": 20}
# Where a packet lands on the gateway's timeline against the gateway's own signalling times: the
# anchor's least network delay (docs/timeline.md "Anchor") and the ms rounding of gap bounds.
PLACEMENT_SLACK_MS = 5
# The gateway closes a session on its media worker after the BYE (siprec-src --verify's rule,
# docs/siprec-src.md "Verification").
GATEWAY_CLOSE_MS = 200


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


def probe(path: str, min_segment_ms: int = 60, *more: str) -> dict:
    out = subprocess.run([PROBE, path, "--min-segment-ms", str(min_segment_ms), *more], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)


def fine_probe(path: str) -> dict:
    """The probe in FINE_WINDOW_MS windows, for how long tones and silences last; a tone change
    does not split a segment (a 5 ms window's peak is coarse; the dominant tone is still exact)."""
    return probe(path, 60, "--window-ms", str(FINE_WINDOW_MS), "--freq-tolerance-hz", "0")


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


def src_times(rec: dict, prefix: str) -> list[int]:
    """siprec-src's own times (ms on its monotonic clock from its start) of the call's events
    whose text starts with prefix ("<ms>ms <what>", docs/siprec-src.md "Output")."""
    out = []
    for e in rec["events"]:
        ms, _, what = e.partition("ms ")
        if what.startswith(prefix):
            out.append(int(ms))
    return out


def sent_ms(rec: dict, leg: str, forged: int = 0) -> int:
    """How long a leg's audio lasts as siprec-src sent it: its genuine packets x 20 ms."""
    return (rec[leg]["packets"] - forged) * FRAME_MS


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

    def assertToneLength(self, ch: dict, want_ms: float, what: str, codec: str = "PCMA"):
        """A channel (of fine_probe) sounds for want_ms, what was sent: short by more than one
        packet fails (beyond the decoder's start), longer by at most the probe's edge window per
        stretch."""
        stretches = max(1, len(ch["segments"]))
        start = DECODER_START_MS.get(codec, 0)
        self.assertGreaterEqual(ch["active_ms"], want_ms - FRAME_MS - start,
                                f"{what}: {want_ms} ms sent, sounds {ch['active_ms']} ms: {ch}")
        self.assertLessEqual(ch["active_ms"], want_ms + FINE_WINDOW_MS * stretches + 1,
                             f"{what}: {want_ms} ms sent, sounds {ch['active_ms']} ms: {ch}")

    def assertTones(self, audio: str, rec: dict, what: str, rate: int | None = None, forged: int = 0,
                    codec: str = "PCMA"):
        """Caller's tone on the left channel, agent's on the right, each sounding as long as that
        leg's packets last (sent_ms: packets x 20 ms, as measured by siprec-src; not --duration,
        which a busy machine stretches)."""
        p = fine_probe(audio)
        if rate is not None:
            self.assertEqual(p["sample_rate"], rate, f"{what}: {p}")
        self.assertEqual(p["channels"], 2, f"{what}: {p}")
        for ch, leg, hz in zip(p["channel_stats"], ("caller", "agent"), (CALLER_HZ, AGENT_HZ)):
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15, msg=f"{what}: {ch}")
            self.assertToneLength(ch, sent_ms(rec, leg, forged), f"{what}, {leg}", codec)
        return p

    def assertSentAudio(self, path: str, doc: dict, rec: dict, what: str, rate: int | None = None,
                        forged: int = 0):
        """What siprec-src sent is what was recorded: every genuine packet of each leg received
        (forged: SRTP copies per leg the gateway must refuse), none lost, and each leg's tone on
        its channel for as long as its packets last."""
        for s, leg in zip(doc["streams"], ("caller", "agent")):
            self.assertEqual(s["packets_received"], rec[leg]["packets"] - forged, f"{what}: {s}")
            self.assertEqual(s["packets_lost"], 0, f"{what}: {s}")
        codec = doc["streams"][0]["codec"].split("/")[0]  # "G729/8000" -> "G729"
        return self.assertTones(audio_path(path, doc), rec, what, rate, forged, codec)

    def assertMeasuredDuration(self, doc: dict, rec: dict, what: str = ""):
        """The recording lasts the session siprec-src measured (call_ms): at least 200 OK received
        -> BYE sent, at most INVITE sent -> BYE answered plus the gateway's close."""
        self.assertIsNotNone(rec["call_ms"], f"{what}: the call did not end with its BYE answered 2xx")
        lo, hi = rec["call_ms"]
        self.assertGreaterEqual(doc["duration_ms"], lo - 1, f"{what}: call_ms {rec['call_ms']}")
        self.assertLessEqual(doc["duration_ms"], hi + GATEWAY_CLOSE_MS, f"{what}: call_ms {rec['call_ms']}")

    def assertTransferTime(self, since_ms: float, rec: dict, origin: tuple[int, int], msg):
        """since_ms: from an instant that lies within `origin` (ms on siprec-src's clock, from its
        start) to the join time siprec-src wrote into the transfer's metadata, taken when it ran
        the transfer (after its `transfer` event, before the re-INVITE's 2xx). Bounded by what
        siprec-src measured, not by the planned time. Wall-clock ms of one machine (the ISO
        times' precision), hence the 2 ms."""
        t_transfer = src_times(rec, "transfer")[0]
        oks = [t for t in src_times(rec, "re-INVITE answered 2") if t >= t_transfer]
        self.assertTrue(oks, rec["events"])
        self.assertGreaterEqual(since_ms, t_transfer - origin[1] - 2, (rec["events"], origin, msg))
        self.assertLessEqual(since_ms, oks[0] - origin[0] + 2, (rec["events"], origin, msg))

    def assertSilenceWhereSignalled(self, p: dict, doc: dict, run: SrcRun, rec: dict, action: str,
                                    cause: str, what: str):
        """One `action` (pause, hold-zero) ended by resume, on both legs. Each channel: tone,
        then silence exactly as long as the packet times siprec-src skipped (paused_packets x
        20 ms: its RTP clock ran on), then tone. The gateway's `cause` gap lies in that silence
        and is as long as the signalled interval measured by siprec-src's events: at most from
        the re-INVITE that paused to the resume's 2xx, at least from the pause's 2xx to the
        resume's re-INVITE, less the last packet before the pause (sent before the re-INVITE,
        20 ms long) and the sender's worst lateness (packets due before the resume's 2xx but
        sent after it, placed by their timestamps)."""
        t_pause = src_times(rec, action)[0]
        t_resume = src_times(rec, "resume")[0]
        oks = [t for t in src_times(rec, "re-INVITE answered 2") if t >= t_pause]
        self.assertGreaterEqual(len(oks), 2, f"{what}: no 2xx for the {action} and resume: {rec['events']}")
        pause_ok, resume_ok = oks[0], oks[1]
        resume_sent = max(t_resume, pause_ok)  # re-INVITEs never overlap
        shortest = resume_sent - pause_ok - FRAME_MS - run.json["sender_max_late_ms"] - PLACEMENT_SLACK_MS
        longest = resume_ok - t_pause + PLACEMENT_SLACK_MS
        for i, (ch, leg) in enumerate(zip(p["channel_stats"], ("caller", "agent"))):
            segs = ch["segments"]
            self.assertEqual(len(segs), 2, f"{what}, {leg}: tone, silence, tone: {segs}")
            skipped = rec[leg]["paused_packets"] * FRAME_MS
            self.assertGreater(skipped, 0, f"{what}, {leg}: {rec[leg]}")
            silence = segs[1]["start_ms"] - segs[0]["end_ms"]
            # Both edges fall at the same place in a window (whole packets apart): the probe
            # measures the silence exactly or one window short.
            self.assertGreaterEqual(silence, skipped - FINE_WINDOW_MS - 2, f"{what}, {leg}: {skipped} ms "
                                    f"not sent, silence {silence} ms: {segs}")
            self.assertLessEqual(silence, skipped + 2, f"{what}, {leg}: {skipped} ms not sent, silence "
                                 f"{silence} ms: {segs}")
            label = doc["streams"][i]["label"]
            gaps = [g for g in doc["gaps"] if g["stream_label"] == label and g["cause"] == cause]
            self.assertEqual(len(gaps), 1, f"{what}: {doc['gaps']}")
            g = gaps[0]
            msg = (f"{what}, {leg}: {cause} gap {g}, signalled {shortest}..{longest} ms "
                   f"({rec['events']}), audio {segs}")
            self.assertGreaterEqual(g["length_ms"], shortest, msg)
            self.assertLessEqual(g["length_ms"], longest, msg)
            self.assertGreaterEqual(g["start_ms"], segs[0]["end_ms"] - FINE_WINDOW_MS - 2, msg)
            self.assertLessEqual(g["start_ms"] + g["length_ms"], segs[1]["start_ms"] + FINE_WINDOW_MS + 2, msg)


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
                # The session as siprec-src measured it, not --duration: on a busy host its BYE
                # timer fires late.
                self.assertMeasuredDuration(doc, rec, dialect)


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
                    self.assertEqual(s["ssrcs"], rec[leg]["ssrcs"], s)
                self.assertSentAudio(path, doc, rec, codec, rate)


# ---------------------------------------------------------------------------
# Early media, timeline actions, fault injection, transports

# Early media under test: at least this much RTP arrived before the ACK (5 packets).
EARLY_MIN_MS = 5 * FRAME_MS


class SrcMediaTest(SrcTestCase):

    def test_early_media_is_recorded_from_the_first_packet(self):
        run, rec = self.call("--early-media", "500")
        self.assertEqual(run.json["options"]["early_media_ms"], 500)
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        ack = event_ms(doc, "established (ACK)")
        self.assertIsNotNone(ack, doc["events"])
        for i, s in enumerate(doc["streams"]):
            first = iso_ms(s["first_packet_time"]) - iso_ms(doc["start_time"])
            # RTP flowed well before the ACK reached the gateway (the ACK leaves 500 ms after the
            # 200 OK, or later on a busy machine; at least EARLY_MIN_MS of it is the case under
            # test, whatever the sender's start-up delay) ...
            self.assertGreaterEqual(ack - first, EARLY_MIN_MS, (doc["events"], s))
        # ... and none of it was dropped: every packet sent is in the recording, for as long as sent.
        p = self.assertSentAudio(path, doc, rec, "early media")
        for i, ch in enumerate(p["channel_stats"]):
            first = iso_ms(doc["streams"][i]["first_packet_time"]) - iso_ms(doc["start_time"])
            # Audio starts at the first packet, i.e. well before the ACK.
            self.assertLessEqual(ch["segments"][0]["start_ms"], first + 20, ch["segments"])
            self.assertLess(ch["segments"][0]["start_ms"], ack - EARLY_MIN_MS + 20, ch["segments"])

    def test_pause_resume_is_silence_of_the_right_length(self):
        # Lengths from what siprec-src measured (packets sent and skipped, its re-INVITEs and their
        # 2xx), not from the timeline's 1 s: on a busy machine the actions fire late.
        run, rec = self.call("--timeline", "pause@1s,resume@2s", duration="3")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        whats = [e["what"] for e in doc["events"]]
        self.assertIn("stream 1 paused", whats)
        self.assertIn("stream 1 resumed", whats)
        p = self.assertSentAudio(path, doc, rec, "pause/resume")
        self.assertSilenceWhereSignalled(p, doc, run, rec, "pause", "pause", "pause/resume")

    def test_hold_by_zero_address_is_silence_of_the_right_length(self):
        # RFC 2543 hold as BroadWorks/Metaswitch send it: re-INVITE with c=0.0.0.0 and no direction
        # attribute (siprec-src hold-zero), then a normal re-offer (resume).
        run, rec = self.call("--timeline", "hold-zero@1s,resume@2s", duration="3")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertTrue(doc["complete"], doc)
        whats = [e["what"] for e in doc["events"]]
        self.assertIn("stream 1 held", whats)
        self.assertIn("stream 2 held", whats)
        self.assertIn("stream 1 resumed", whats)
        self.assertFalse([w for w in whats if "timeout" in w], whats)
        # Tone, exact silence, tone: measured as in the pause test.
        p = self.assertSentAudio(path, doc, rec, "hold-zero/resume")
        self.assertSilenceWhereSignalled(p, doc, run, rec, "hold-zero", "hold", "hold-zero/resume")

    def test_delayed_offer_is_recorded_from_the_answer_in_the_ack(self):
        # INVITE with the metadata only; the gateway offers in its 200 OK, siprec-src answers in the
        # ACK (RFC 3261 §13.2.1) and sends each leg's tone to the port of the offer's labelled stream.
        run, rec = self.call("--delayed-offer")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertTrue(doc["complete"], doc)
        whats = [e["what"] for e in doc["events"]]
        self.assertIn("SDP answer in the ACK: 2 stream(s) to record", whats)
        self.assertEqual([s["label"] for s in doc["streams"]], ["1", "2"], doc["streams"])
        self.assertSentAudio(path, doc, rec, "delayed offer")

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
        # The first agent left exactly when the second joined, when siprec-src ran the transfer
        # (not when it was planned: a busy machine runs it late); the second and the caller are
        # still there at the end.
        self.assertIsNotNone(first["leave_time"], first)
        self.assertIsNone(second["leave_time"], second)
        self.assertIsNone(caller["leave_time"], caller)
        self.assertEqual(first["leave_time"], second["join_time"])
        # The first agent's join time: when siprec-src started the call, before its INVITE.
        self.assertTransferTime(iso_ms(second["join_time"]) - iso_ms(first["join_time"]), rec,
                                (0, src_times(rec, "INVITE to")[0]), (first, second))
        self.assertEqual(len(doc["metadata_xml"]), 2, "INVITE and the transfer re-INVITE")
        self.assertIn(second_aor, doc["metadata_xml"][1]["xml"])
        self.assertNotIn(second_aor, doc["metadata_xml"][0]["xml"])
        # The agent channel keeps the agent leg's tone through the transfer, every packet of it.
        self.assertSentAudio(path, doc, rec, "transfer")

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
        self.assertMeasuredDuration(doc, rec, "loss and reordering")
        p = probe(audio_path(path, doc))
        self.assertAlmostEqual(p["duration_ms"], doc["duration_ms"], delta=2)
        self.assertEqual(doc["audio"][0]["duration_ms"], doc["duration_ms"])
        for i, (ch, hz, leg) in enumerate(zip(p["channel_stats"], (CALLER_HZ, AGENT_HZ),
                                              ("caller", "agent"))):
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15, msg=ch)
            first = iso_ms(doc["streams"][i]["first_packet_time"]) - iso_ms(doc["start_time"])
            self.assertLessEqual(ch["segments"][0]["start_ms"], first + 20, ch["segments"])
            # From the first sound to the last: every packet time of the leg, sent or lost by
            # injection (the silence of a loss is inside), less the leg's first and last packet
            # if the injection took them.
            span = ch["segments"][-1]["end_ms"] - ch["segments"][0]["start_ms"]
            packet_times_ms = (rec[leg]["packets"] + rec[leg]["lost_injected"]) * FRAME_MS
            self.assertGreaterEqual(span, packet_times_ms - 2 * FRAME_MS, (rec[leg], ch["segments"]))
            self.assertLessEqual(span, packet_times_ms + p["window_ms"], (rec[leg], ch["segments"]))

    def check_transport(self, transport: str):
        run, rec = self.call(transport=transport, duration="1.5")
        self.assertEqual(rec["target"], f"{transport}:{LOOPBACK}:{self.daemon.sip_port}")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertTrue(any(f" over {transport}," in e["what"] for e in doc["events"]), doc["events"])
        self.assertSentAudio(path, doc, rec, transport)

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
            # Answered (a session still waiting for its spool to be durable is active too).
            self.assertTrue(wait_until(lambda: a.metrics().get("sgw_invites_total", code="200") >= 1, 10),
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
        # Timing from siprec-src's own event log ("<ms>ms <what>"), never from the plan: a busy
        # machine runs its timers late.
        first_ok, second_ok = src_times(rec, "200 OK")[:2]
        lost = src_times(rec, "gateway lost")[0]
        reinvite = src_times(rec, "re-establishing: INVITE")[0]
        stop, bye = src_times(rec, "RTP stop")[0], src_times(rec, "BYE")[0]
        bye_ok = src_times(rec, "BYE answered 2")[0]
        # The call kept its length from the first 200 OK: never shorter, and not started again
        # at the re-establishment.
        self.assertGreaterEqual(stop - first_ok, 5000 - 1, rec["events"])
        self.assertLess(stop - first_ok, 5000 + (second_ok - first_ok), rec["events"])
        self.assertLess(second_ok - lost, 500, rec["events"])
        # The second session lasted as measured: at least 200 OK -> BYE, at most INVITE -> BYE answered.
        self.assertGreaterEqual(doc_b["duration_ms"], bye - second_ok - 1,
                                (doc_b["duration_ms"], rec["events"]))
        self.assertLessEqual(doc_b["duration_ms"], bye_ok - reinvite + GATEWAY_CLOSE_MS,
                             (doc_b["duration_ms"], rec["events"]))
        # Its audio: every packet it received, none missing, each sounding on its leg's channel; and
        # those packets are the rest of the call: the RTP sent from the second 200 OK (the new
        # destination) to the stop, give or take a packet and the sender's lateness at either end.
        late = run.json["sender_max_late_ms"]
        p = fine_probe(audio_path(path_b, doc_b))
        for s, ch, leg, hz in zip(doc_b["streams"], p["channel_stats"], ("caller", "agent"),
                                  (CALLER_HZ, AGENT_HZ)):
            self.assertEqual(s["packets_lost"], 0, s)
            got_ms = s["packets_received"] * FRAME_MS
            self.assertGreaterEqual(got_ms, stop - second_ok - 2 * FRAME_MS - late, (s, rec["events"], late))
            self.assertLessEqual(got_ms, stop - second_ok + 2 * FRAME_MS + late, (s, rec["events"], late))
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15, msg=f"after re-establishing: {ch}")
            self.assertToneLength(ch, got_ms, f"after re-establishing, {leg}")

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
