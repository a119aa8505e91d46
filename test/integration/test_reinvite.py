"""Mid-session changes: pause/resume (RFC 7866 §8.1.3), streams added and
removed, metadata updates by re-INVITE and UPDATE (RFC 7866 §9.1), session
timers (RFC 4028). Each change is checked on the wire and in the recording:
the pause's silence, the added stream's tone, the merged metadata."""

import subprocess
import time
import unittest

from harness import (RTP_SEND, Call, DaemonTestCase, describe, metadata_xml, multipart,
                     probe_audio, recording_for_call, sdp, siprec_body, siprec_headers,
                     siprec_streams, wait_rtp_quiet)

BOUNDARY = "OSS-unique-boundary-42"
CTYPE = f'multipart/mixed;boundary="{BOUNDARY}"'
TOL_MS = 20  # documented alignment bound of the timeline (docs/timeline.md)

SESSION_ID = "hVpd7YQgRW2nD22h7q60JQ=="   # harness.metadata_xml's ids
CUSTOMER_ID = "srfBElmCRp2QB23b7Mpk0w=="
AGENT_ID = "zSfPoSvdSDCmU3A3TRDxAw=="
SUPERVISOR_ID = "c3VwZXJ2aXNvcjAwMDAwMQ=="


def supervisor_joins_agent_leaves() -> str:
    """A partial update (RFC 7865 §6.1): a supervisor joins, receiving stream 1, and the
    agent leaves. Only the changes, as an SRC sends them."""
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>",
        "  <datamode>partial</datamode>",
        f'  <participant participant_id="{SUPERVISOR_ID}">',
        '    <nameID aor="sip:supervisor7@agents.example.com"><name xml:lang="en">Supervisor 7</name></nameID>',
        "  </participant>",
        f'  <participantsessionassoc participant_id="{SUPERVISOR_ID}" session_id="{SESSION_ID}">',
        "    <associate-time>2024-05-06T10:21:00Z</associate-time>",
        "  </participantsessionassoc>",
        f'  <participantstreamassoc participant_id="{SUPERVISOR_ID}">',
        "    <recv>UAAMm5GRQKSCMVvLyl4r00w==</recv>",
        "  </participantstreamassoc>",
        f'  <participantsessionassoc participant_id="{AGENT_ID}" session_id="{SESSION_ID}">',
        "    <disassociate-time>2024-05-06T10:22:00Z</disassociate-time>",
        "  </participantsessionassoc>",
        "</recording>", ""])


class ReinviteTest(DaemonTestCase):

    def start_call(self, c, n=2, headers=None):
        call = Call(c)
        streams = siprec_streams(n)
        body, ctype = siprec_body(streams=streams)
        r = call.invite(body, ctype, (headers or []) + siprec_headers())
        self.assertStatus(r, 200, "initial INVITE")
        self.check_answer(r, streams, "initial INVITE")
        return call

    def reinvite(self, call, streams, version, with_metadata=True, what=""):
        offer = sdp(streams, version=version)
        if with_metadata:
            body = multipart([("application/sdp", offer),
                              ("application/rs-metadata+xml", metadata_xml(len(streams)))], BOUNDARY)
            r = call.invite(body, CTYPE)
        else:
            r = call.invite(offer, "application/sdp")
        self.assertStatus(r, 200, what)
        return self.check_answer(r, streams, what)

    def recording(self, call):
        found = recording_for_call(self.daemon.recordings_dir, call.call_id)
        self.assertIsNotNone(found, self._diag(f"no recording for Call-ID {call.call_id}"))
        return found

    def test_pause_and_resume(self):
        # The SRC's RTP (PCMA tones) stops from 1.0 s to 4.0 s of its own clock; the pause
        # re-INVITE goes once the gateway sees the RTP stop, the resume one 0.5 s later,
        # both inside the silence whatever the machine's load.
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            ports = [m.port for m in call.answer.media]
            sender = subprocess.Popen(
                [RTP_SEND, "--duration-ms", "5000",
                 "--stream", f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440,pause=1000-4000",
                 "--stream", f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000,pause=1000-4000"],
                stdout=subprocess.DEVNULL)
            try:
                self.assertTrue(wait_rtp_quiet(self.daemon), self._diag("the RTP never paused"))
                # Pause: RFC 7866 §8.1.3 -- the SRC sets the streams inactive.
                paused = self.reinvite(call, siprec_streams(2, "inactive"), 2, what="pause re-INVITE")
                self.assertEqual([m.direction for m in paused.media], ["inactive", "inactive"],
                                 describe(call.final))
                time.sleep(0.5)  # the pause's length: not asserted (signalling times vary)
                # Resume: sendonly again -> recvonly.
                resumed = self.reinvite(call, siprec_streams(2, "sendonly"), 3, what="resume re-INVITE")
                self.assertEqual([m.direction for m in resumed.media], ["recvonly", "recvonly"])
                # The recording continues on the same ports (the SRC keeps sending there).
                self.assertEqual([m.port for m in resumed.media], ports,
                                 self._diag(f"ports changed across pause/resume:\n{describe(call.final)}"))
                self.assertEqual(sender.wait(30), 0)
            finally:
                if sender.poll() is None:
                    sender.kill()
                    sender.wait(5)
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()
        path, doc = self.recording(call)
        self.assertTrue(doc["complete"], doc)
        audio = path.rsplit("/", 1)[0] + "/" + doc["audio"][0]["file"]
        for ch, hz, label in zip(probe_audio(audio)["channel_stats"], (440, 1000), ("1", "2")):
            segs = ch["segments"]
            self.assertEqual(len(segs), 2, segs)
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15, msg=ch)
            # The audio around the pause is where it was sent, the silence exactly as long.
            self.assertAlmostEqual(segs[0]["end_ms"] - segs[0]["start_ms"], 1000, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["start_ms"] - segs[0]["end_ms"], 3000, delta=TOL_MS, msg=segs)
            self.assertAlmostEqual(segs[1]["end_ms"] - segs[1]["start_ms"], 1000, delta=TOL_MS, msg=segs)
            # The JSON states the silence: gaps of this stream tile it, and the signalled
            # pause is one of them, inside it.
            gaps = [g for g in doc["gaps"] if g["stream_label"] == label
                    and g["start_ms"] >= segs[0]["end_ms"] - TOL_MS
                    and g["start_ms"] + g["length_ms"] <= segs[1]["start_ms"] + TOL_MS]
            self.assertAlmostEqual(sum(g["length_ms"] for g in gaps), 3000, delta=TOL_MS, msg=doc["gaps"])
            self.assertIn("pause", [g["cause"] for g in gaps], doc["gaps"])

    def test_pause_one_stream_only(self):
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            streams = siprec_streams(2)
            streams[1]["direction"] = "inactive"
            ans = self.reinvite(call, streams, 2, with_metadata=False, what="pause stream 2")
            self.assertEqual([m.direction for m in ans.media], ["recvonly", "inactive"])
            self.assertStatus(call.bye(), 200, "BYE")

    def test_add_and_remove_stream(self):
        with self.daemon.client("tcp") as c:
            call = self.start_call(c)
            first_ports = [m.port for m in call.answer.media]
            three = siprec_streams(3)
            ans = self.reinvite(call, three, 2, what="re-INVITE adding stream 3")
            self.assertEqual([m.port for m in ans.media[:2]], first_ports,
                             self._diag("existing streams moved when a stream was added"))
            self.assertNotIn(ans.media[2].port, first_ports)
            # 1.5 s of a distinct tone on each of the three streams.
            ports = [m.port for m in ans.media]
            subprocess.run([RTP_SEND, "--duration-ms", "1500"]
                           + [a for p, hz in zip(ports, (440, 1000, 1500))
                              for a in ("--stream", f"to=127.0.0.1:{p},codec=PCMA,tone={hz}")],
                           check=True, stdout=subprocess.DEVNULL, timeout=30)
            # Remove stream 2: RFC 3264 §8.2 -- port 0 in the offer, m-line kept.
            removed = siprec_streams(3)
            removed[1]["port"] = 0
            ans = self.reinvite(call, removed, 3, what="re-INVITE removing stream 2")
            self.assertEqual(ans.media[1].port, 0)
            self.assertStatus(call.bye(), 200, "BYE")
        self.wait_idle()
        # The added stream is recorded like the others: its own channel, its tone, every packet.
        path, doc = self.recording(call)
        self.assertEqual([s["label"] for s in doc["streams"]], ["1", "2", "3"], doc["streams"])
        folder = path.rsplit("/", 1)[0]
        for st, hz in zip(doc["streams"], (440, 1000, 1500)):
            self.assertEqual(st["packets_received"], 75, st)
            ch = probe_audio(folder + "/" + st["file"])["channel_stats"][st["channel"]]
            self.assertAlmostEqual(ch["dominant_hz"], hz, delta=15, msg=(st, ch))
            self.assertAlmostEqual(ch["active_ms"], 1500, delta=TOL_MS, msg=(st, ch))

    def check_merged_metadata(self, call, update: str):
        """The recording keeps both documents verbatim and the model merged from them
        (docs/metadata.md, "Partial updates"): the supervisor added, the agent left."""
        _, doc = self.recording(call)
        self.assertEqual(len(doc["metadata_xml"]), 2, doc["metadata_xml"])
        self.assertEqual(doc["metadata_xml"][1]["xml"], update)
        self.assertEqual(doc["metadata_errors"], [])
        md = doc["metadata"]
        self.assertEqual(md["data_mode"], "complete")  # the base's mode
        self.assertEqual([p["id"] for p in md["participants"]], [CUSTOMER_ID, AGENT_ID, SUPERVISOR_ID])
        sup = md["participants"][2]
        self.assertEqual(sup["aors"], ["sip:supervisor7@agents.example.com"], sup)
        self.assertEqual(sup["recv"], ["UAAMm5GRQKSCMVvLyl4r00w=="], sup)
        self.assertEqual([(a["session_id"], a["associate_time"]) for a in sup["sessions"]],
                         [(SESSION_ID, "2024-05-06T10:21:00Z")], sup)
        agent = md["participants"][1]
        self.assertEqual([a["disassociate_time"] for a in agent["sessions"]], ["2024-05-06T10:22:00Z"], agent)
        self.assertEqual(agent["send"], ["UAAMm5GRQKSCMVvLyl4r01w=="], agent)  # kept from the base
        people = {p["id"]: p for p in doc["participants"]}
        self.assertEqual(people[AGENT_ID]["leave_time"], "2024-05-06T10:22:00Z", people)
        self.assertIsNone(people[SUPERVISOR_ID]["leave_time"], people)
        self.assertIsNone(people[CUSTOMER_ID]["leave_time"], people)

    def test_metadata_only_reinvite(self):
        # RFC 7866 §9.1: a re-INVITE carrying only metadata; the answer is the
        # current SDP (same m-lines, same ports).
        update = supervisor_joins_agent_leaves()
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            before = call.answer
            r = call.invite(update, "application/rs-metadata+xml")
            self.assertStatus(r, 200, "metadata-only re-INVITE")
            self.assertEqual(r.content_type, "application/sdp", self._diag(describe(r)))
            from harness import Sdp
            now = Sdp(r.body_text())
            self.assertEqual([(m.media, m.port, m.direction) for m in now.media],
                             [(m.media, m.port, m.direction) for m in before.media],
                             self._diag(describe(r)))
            self.assertStatus(call.bye(), 200, "BYE")
        self.check_merged_metadata(call, update)

    def test_metadata_update_by_update(self):
        update = supervisor_joins_agent_leaves()
        with self.daemon.client("udp") as c:
            call = self.start_call(c)
            r = call.request("UPDATE", update, "application/rs-metadata+xml")
            self.assertStatus(r, 200, "UPDATE with metadata")
            r = call.request("INFO", b"", None)
            self.assertIsNotNone(r, self._diag("no answer to INFO"))
            self.assertLess(r.status, 500, self._diag(describe(r)))
            self.assertStatus(call.bye(), 200, "BYE")
        self.check_merged_metadata(call, update)

    def test_reinvite_unknown_dialog_481(self):
        with self.daemon.client("udp") as c:
            call = Call(c)
            call.to_tag = "no-such-dialog"
            body, ctype = siprec_body()
            r = call.invite(body, ctype)
            self.assertStatus(r, 481, "re-INVITE outside a dialog")

    def test_session_timer_refresh(self):
        # RFC 4028 §9: the UAS echoes Session-Expires in the 2xx; a refresh
        # re-INVITE/UPDATE is answered the same way.
        timer = [("Session-Expires", "1800;refresher=uac"), ("Min-SE", "90")]
        with self.daemon.client("udp") as c:
            call = self.start_call(c, headers=timer)
            se = call.final.header("session-expires")
            self.assertIsNotNone(se, self._diag(f"2xx without Session-Expires:\n{describe(call.final)}"))
            self.assertEqual(int(se.split(";")[0]), 1800, describe(call.final))
            self.assertIn("refresher=uac", se.replace(" ", ""), describe(call.final))
            # Refresh by re-INVITE with the same SDP.
            r = call.invite(sdp(siprec_streams(2), version=2), "application/sdp",
                            [("Session-Expires", "1800;refresher=uac"), ("Supported", "timer")])
            self.assertStatus(r, 200, "refresh re-INVITE")
            self.assertIsNotNone(r.header("session-expires"), self._diag(describe(r)))
            # Refresh by UPDATE without a body.
            r = call.request("UPDATE", headers=[("Session-Expires", "1800;refresher=uac"),
                                                ("Supported", "timer")])
            self.assertStatus(r, 200, "refresh UPDATE")
            self.assertIsNotNone(r.header("session-expires"), self._diag(describe(r)))
            self.assertStatus(call.bye(), 200, "BYE")

    def test_session_expires_below_min_se_422(self):
        # RFC 4028 §8.1: Session-Expires below the UAS minimum (90 s floor) -> 422 + Min-SE.
        with self.daemon.client("udp") as c:
            call = Call(c)
            body, ctype = siprec_body()
            r = call.invite(body, ctype, siprec_headers() + [("Session-Expires", "30")])
            self.assertStatus(r, 422, "Session-Expires: 30")
            self.assertIsNotNone(r.header("min-se"), self._diag(describe(r)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
