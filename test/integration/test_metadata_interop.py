"""Vendor metadata flows, end to end (issue 9 items 4-6; docs/interop.md).

The real siprecd gets real SIPREC calls, from siprec-src (its `broadworks`, `webex` and `cisco`
dialects) or from the Python SIP client with a vendor's document (test/metadata/data/), and real
RTP: a distinct tone per leg. Each test decodes the published recording with sgw-audio-probe and
checks that the right party's tone is on the right channel, and checks the recording JSON: who
the participants are, which channel each one is on, when they joined and left, and the
conversation id.
"""

from __future__ import annotations

import os
import time
import unittest

from harness import Call, multipart, sdp, siprec_headers
from test_recording import RecordingTestCase, first_packet_ms, probe, streams_for
from test_siprec_src import (AGENT_HZ, CALLER_HZ, SrcTestCase, iso_ms, participant, src_times)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "metadata", "data")


def sample(name: str) -> str:
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def by_aor(doc: dict) -> dict[str, dict]:
    return {p["aor"]: p for p in doc["participants"]}


class DocumentCallTestCase(RecordingTestCase):
    """A call from the Python SIP client with a vendor's metadata document."""

    def record(self, streams: list[dict], xml: str, headers: list[tuple[str, str]],
               tones: list[str], duration_ms: int) -> tuple[dict, list[str]]:
        """INVITE with `streams` (m-lines) and `xml`; tones[i] (sgw-rtp-send spec without `to=`)
        to the port answered for m-line i for duration_ms; BYE. Returns the recording."""
        before = self.recordings()
        with self.daemon.client("udp") as c:
            call = Call(c)
            body = multipart([("application/sdp", sdp(streams)), ("application/rs-metadata+xml", xml)])
            t = time.monotonic()
            r = call.invite(body, 'multipart/mixed;boundary="OSS-unique-boundary-42"', headers)
            self.setup_ms = (time.monotonic() - t) * 1000  # INVITE -> 200 OK, used by assertTone
            self.assertStatus(r, 200, "INVITE")
            ports = [m.port for m in call.answer.media]
            self.send([f"to=127.0.0.1:{port},{tone}" for port, tone in zip(ports, tones)], duration_ms)
            self.assertStatus(call.bye(), 200, "BYE")
        return self.wait_recording(before)


# ---------------------------------------------------------------------------
# BroadWorks / Webex: <send><id>...</id></send>

class BroadWorksSrcTest(SrcTestCase):
    """siprec-src sends the metadata as BroadWorks (and Webex Calling) do: flat
    <recording_metadata>, each participant's stream as <send><id>urn:uuid:...</id></send>.
    The gateway maps each participant to its stream: caller's tone on the caller's channel,
    agent's on the agent's, both participants named on their channel."""

    def test_broadworks_and_webex_map_participants_to_their_streams(self):
        for dialect in ("broadworks", "webex"):
            with self.subTest(dialect=dialect):
                run, rec = self.call("--dialect", dialect)
                # siprec-src --verify: 440 Hz (caller leg) on channel 0, 1000 Hz on channel 1.
                self.assertIn(f"caller=ch0:{CALLER_HZ}Hz agent=ch1:{AGENT_HZ}Hz", run.lines("PASS ")[0])
                path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
                self.assertEqual(doc["metadata"]["dialect"], "siprec-legacy")
                self.assertEqual(doc["metadata_errors"], [])
                self.assertIn("<send>", doc["metadata_xml"][0]["xml"])
                self.assertIn("<id>", doc["metadata_xml"][0]["xml"])
                streams = {s["id"]: s["label"] for s in doc["metadata"]["streams"]}
                parts = {p["aors"][0]: p for p in doc["metadata"]["participants"]}
                self.assertEqual([streams[s] for s in parts[rec["caller"]["aor"]]["send"]], ["1"])
                self.assertEqual([streams[s] for s in parts[rec["agent"]["aor"]]["send"]], ["2"])
                # The roles come from the participants' streams, not from the m-line fallback.
                for p in doc["participants"]:
                    self.assertEqual(p["role_rule"], "metadata-order", p)
                self.assertSentAudio(path, doc, rec, dialect)


class BroadWorksDocumentTest(DocumentCallTestCase):
    """A BroadWorks AS document (test/metadata/data/broadworks_send_id.xml) with the m-lines in
    the opposite order to the participants: only the <send><id> mapping puts the caller's tone
    on the caller's (left) channel."""

    def test_send_id_mapping_beats_mline_order(self):
        streams = streams_for("PCMU")
        streams[0]["label"], streams[1]["label"] = "2", "1"  # agent's stream first
        # m-line 0 (label 2): the agent, 1000 Hz; m-line 1 (label 1): the caller, 440 Hz.
        doc, audio = self.record(streams, sample("broadworks_send_id.xml"), siprec_headers(),
                                 ["codec=PCMU,tone=1000", "codec=PCMU,tone=440"], 2000)
        p = probe(audio[0])
        self.assertEqual(p["channels"], 2)
        left, right = p["channel_stats"]
        self.assertTone(left, 440, first_packet_ms(doc, 1), 2000, "caller (left)")
        self.assertTone(right, 1000, first_packet_ms(doc, 0), 2000, "agent (right)")
        parts = by_aor(doc)
        caller = parts["sip:+13015550188@as.voip.example.net;user=phone"]
        agent = parts["sip:agent-2201@as.voip.example.net"]
        self.assertEqual((caller["role"], caller["channel"]), ("caller", 0), doc["participants"])
        self.assertEqual((agent["role"], agent["channel"]), ("agent", 1), doc["participants"])
        self.assertTrue(doc["complete"])


# ---------------------------------------------------------------------------
# Cisco CUBE: X-Cisco-Recording-Participant on the transfer re-INVITE

class CiscoTransferTest(SrcTestCase):
    """CUBE names the parties only in X-Cisco-Recording-Participant headers; after a transfer
    its re-INVITE names the new agent on the agent's media-index. The recording lists the
    transferred-in agent on the agent channel, from the transfer on, and the first agent as
    having left then; the audio keeps each leg's tone on its channel."""

    def test_transfer_headers_update_the_participants(self):
        run, rec = self.call("--dialect", "cisco", "--timeline", "transfer@1s")
        self.assertIn(f"caller=ch0:{CALLER_HZ}Hz agent=ch1:{AGENT_HZ}Hz", run.lines("PASS ")[0])
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertEqual(doc["metadata"]["dialect"], "cisco-headers")
        second_aor = rec["agent"]["aor"].replace("@", "-b@")  # sip:agent-N-b@... (docs/siprec-src.md)
        first, second = participant(doc, rec["agent"]["aor"]), participant(doc, second_aor)
        caller = participant(doc, rec["caller"]["aor"])
        self.assertIsNotNone(second, f"{second_aor} not in {doc['participants']}")
        self.assertEqual(len(doc["participants"]), 3, doc["participants"])
        # The new agent sends the agent's media-index: it is on the agent channel.
        self.assertEqual((first["channel"], second["channel"], caller["channel"]), (1, 1, 0),
                         doc["participants"])
        self.assertTrue(second["name"].endswith(" B"), second)  # "Agent N B", from the header
        # Agent 1 left exactly when agent 2 joined, when siprec-src ran the transfer (measured:
        # a busy machine runs it later than planned); agent 2 and the caller are still there at
        # the end. The recording starts when the gateway took the INVITE: after siprec-src sent
        # it, before the 200 OK came back.
        self.assertIsNotNone(first["leave_time"], first)
        self.assertIsNone(second["leave_time"], second)
        self.assertIsNone(caller["leave_time"], caller)
        self.assertEqual(first["leave_time"], second["join_time"])
        self.assertTransferTime(iso_ms(second["join_time"]) - iso_ms(doc["start_time"]), rec,
                                (src_times(rec, "INVITE to")[0], src_times(rec, "200 OK")[0]),
                                (doc["start_time"], second))
        events = [e["what"] for e in doc["events"]]
        self.assertIn("metadata updated (X-Cisco-Recording-Participant, 2 value(s))", events)
        self.assertSentAudio(path, doc, rec, "cisco transfer")


# ---------------------------------------------------------------------------
# Genesys: conversation id in extension data, no header

class GenesysConversationIdTest(DocumentCallTestCase):
    """A Genesys Cloud document whose conversation id is <gc:conversationId>, nested two levels
    below <extensiondata>, and no X-GenesysConversationID header: the default rules find it."""

    def test_conversation_id_from_extension_data_without_header(self):
        headers = [h for h in siprec_headers() if not h[0].lower().startswith("x-genesys")]
        self.assertFalse(any("conversation" in n.lower() for n, _ in headers), headers)
        doc, audio = self.record(streams_for("PCMA"), sample("genesys_gc_conversation.xml"), headers,
                                 ["codec=PCMA,tone=440", "codec=PCMA,tone=1000"], 1500)
        self.assertEqual(doc["conversation_id"], "2f6c9b1e-8a4d-4c3f-b7e2-91d05a6c3e84")
        self.assertEqual(doc["conversation_id_rule"], "extension:any:ConversationID")
        # The storage key uses it too (default key template {yyyy}/{mm}/{dd}/{conversation_id}/...).
        self.assertIn("/2f6c9b1e-8a4d-4c3f-b7e2-91d05a6c3e84/", audio[0])
        p = probe(audio[0])
        left, right = p["channel_stats"]
        self.assertTone(left, 440, first_packet_ms(doc, 0), 1500, "customer (left)")
        self.assertTone(right, 1000, first_packet_ms(doc, 1), 1500, "agent (right)")
        parts = by_aor(doc)
        self.assertEqual(parts["tel:+13175550142"]["channel"], 0, doc["participants"])
        self.assertEqual(parts["sip:riley.agent@acme.mypurecloud.com"]["channel"], 1, doc["participants"])


if __name__ == "__main__":
    unittest.main()
