"""SDES-SRTP (RFC 4568) end to end: siprec-src --srtp encrypts with libsrtp2, the real siprecd
decrypts on its media worker, and the recording's audio is checked with sgw-audio-probe (which
tone on which channel, for how long). Also the media.srtp policy on the wire (488 + Warning),
authentication failures and rekeying, and that key material never reaches the log or the JSON.

Each class is one ctest test (test/integration/CMakeLists.txt); only processes started here
are stopped, by PID.
"""

from __future__ import annotations

import base64
import json
import os
import random
import unittest

from harness import (Call, DaemonTestCase, describe, metadata_xml, recording_for_call, siprec_body,
                     siprec_headers, siprec_streams, wait_until)
from test_siprec_src import SrcTestCase

SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AES_256_CM_HMAC_SHA1_80",
          "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"]
KEY_BYTES = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30,
             "AES_256_CM_HMAC_SHA1_80": 46, "AEAD_AES_128_GCM": 28, "AEAD_AES_256_GCM": 44}


def invite_once(daemon, streams: list[dict]):
    """One INVITE with these streams; an unexpected 2xx is ended at once. Returns the response."""
    body, ctype = siprec_body(streams=streams)
    with daemon.client("udp") as c:
        call = Call(c)
        r = call.invite(body, ctype, siprec_headers())
        if r is not None and 200 <= r.status < 300:
            call.bye(timeout=2)
    return r


class SrtpMixin:
    def srtp_integrity(self, doc: dict) -> list[tuple[int, int]]:
        return [(s["srtp_auth_failures"], s["srtp_replays"]) for s in doc["integrity"]["streams"]]

    def assertExact(self, doc: dict, rec: dict, what: str, path: str, forged: int = 0):
        """Every genuine packet sent is in the recording, none lost, tones on the right channels
        for as long as the genuine packets last (measured: siprec-src's packets, not --duration)."""
        self.assertSentAudio(path, doc, rec, what, forged=forged)


class SrtpSuitesTest(SrcTestCase, SrtpMixin):
    """media.srtp: allow. Each suite end to end; a forged packet is counted and not recorded;
    a rekey mid-call keeps the audio exact."""

    CONFIG = {"media": {"srtp": "allow"}}

    def test_each_suite_end_to_end(self):
        for suite in SUITES:
            with self.subTest(suite=suite):
                run, rec = self.call("--srtp", suite)
                path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
                self.assertEqual(self.srtp_integrity(doc), [(0, 0), (0, 0)], doc["integrity"])
                self.assertExact(doc, rec, suite, path)

    def test_plain_rtp_still_answered_in_kind(self):
        run, rec = self.call()
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        # Not an SRTP stream: nothing measured (null), not zero.
        self.assertEqual(self.srtp_integrity(doc), [(None, None), (None, None)], doc["integrity"])

    def test_tampered_packet_counted_not_recorded(self):
        m = self.daemon.metrics()
        before = m.get("sgw_srtp_auth_failures_total")
        run, rec = self.call("--srtp", "AES_CM_128_HMAC_SHA1_80", "--timeline", "tamper@1s")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        # One forged copy per leg, sent just before the real packet with the same sequence
        # number: had it been taken, the real one would be a duplicate and the audio damaged.
        self.assertEqual(self.srtp_integrity(doc), [(1, 0), (1, 0)], doc["integrity"])
        self.assertExact(doc, rec, "tamper", path, forged=1)
        self.assertTrue(doc["complete"], doc)
        self.assertTrue(any("failed authentication" in w for w in doc["warnings"]), doc["warnings"])
        self.assertEqual(self.daemon.metrics().get("sgw_srtp_auth_failures_total") - before, 2)

    def test_tampered_aead_packet_counted_not_recorded(self):
        run, rec = self.call("--srtp", "AEAD_AES_128_GCM", "--timeline", "tamper@1s")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertEqual(self.srtp_integrity(doc), [(1, 0), (1, 0)], doc["integrity"])
        self.assertExact(doc, rec, "tamper (GCM)", path, forged=1)

    def test_rekey_mid_call_keeps_audio_exact(self):
        for suite in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM"):
            with self.subTest(suite=suite):
                run, rec = self.call("--srtp", suite, "--timeline", "rekey@1s", duration="3")
                self.assertIn("SRTP keys changed", run.out + run.err + json.dumps(run.json),
                              self.diag(run, "siprec-src did not switch keys"))
                path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
                self.assertTrue(any("rekeyed" in e["what"] for e in doc["events"]), doc["events"])
                self.assertEqual(self.srtp_integrity(doc), [(0, 0), (0, 0)], doc["integrity"])
                self.assertExact(doc, rec, f"rekey {suite}", path)


class SrtpRequireTest(SrcTestCase, SrtpMixin):
    """media.srtp: require. RTP/AVP gets 488 with a Warning on the wire; SRTP is recorded."""

    CONFIG = {"media": {"srtp": "require"}}

    def test_rtp_avp_offer_488_with_warning(self):
        before = self.daemon.metrics().get("sgw_invites_total", code="488")
        r = invite_once(self.daemon, siprec_streams(2))
        self.assertStatus(r, 488, "RTP/AVP offer under media.srtp: require")
        warning = " ".join(r.header_all("warning"))
        # RFC 3261 §20.43: 302 Incompatible transport protocol.
        self.assertRegex(warning, r'^302 \S+ "SRTP required \(media\.srtp: require\)', describe(r))
        self.assertIn("RTP/AVP refused", warning, describe(r))
        self.assertEqual(self.daemon.metrics().get("sgw_invites_total", code="488") - before, 1)

    def test_delayed_offer_488_says_why_and_leaves_nothing(self):
        """An INVITE without SDP (metadata only, or no body): our offer would be RTP/AVP, which
        media.srtp: require cannot record, so the INVITE is refused with a Warning that names the
        delayed offer, before any port or spool (docs/security.md "SRTP")."""
        before = self.daemon.metrics().get("sgw_invites_total", code="488")
        spool_before = set(os.listdir(self.daemon.spool_dir))
        for body, ctype in ((metadata_xml(2), "application/rs-metadata+xml"), (b"", None)):
            with self.daemon.client("udp") as c:
                call = Call(c)
                r = call.invite(body, ctype, siprec_headers())
                if r is not None and 200 <= r.status < 300:
                    call.bye(timeout=2)
            self.assertStatus(r, 488, f"delayed offer ({ctype}) under media.srtp: require")
            warning = " ".join(r.header_all("warning"))
            self.assertRegex(warning, r'^302 \S+ "SRTP required \(media\.srtp: require\): an INVITE '
                                      r'without SDP \(delayed offer\) is not accepted', describe(r))
            self.assertEqual(r.body_text(), "", describe(r))  # no offer of ours
            self.assertIsNone(recording_for_call(self.daemon.recordings_dir, call.call_id, timeout=0.5))
        self.assertEqual(self.daemon.metrics().get("sgw_invites_total", code="488") - before, 2)
        self.assertEqual(set(os.listdir(self.daemon.spool_dir)) - spool_before, set())  # no spool made

    def test_srtp_call_recorded(self):
        run, rec = self.call("--srtp", "AES_256_CM_HMAC_SHA1_80")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertExact(doc, rec, "require", path)


class SrtpOffTest(DaemonTestCase):
    """media.srtp: off (the default): an RTP/SAVP offer gets 488 naming the setting."""

    def test_savp_offer_488_with_warning(self):
        streams = [dict(media="audio", port=40000, proto="RTP/SAVP", pts=[0], rtpmap={0: "PCMU/8000"},
                        label="1", direction="sendonly",
                        extra=["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode()])]
        r = invite_once(self.daemon, streams)
        self.assertStatus(r, 488, "RTP/SAVP offer under media.srtp: off")
        warning = " ".join(r.header_all("warning"))
        self.assertRegex(warning, r'^302 \S+ "SRTP disabled \(media\.srtp: off\)', describe(r))


class SrtpKeysSecretTest(DaemonTestCase):
    """Keys (the SRC's and ours) appear in no log line (debug level) and in no recording JSON."""

    CONFIG = {"media": {"srtp": "allow"}, "log": {"level": "debug"}}

    def test_keys_absent_from_log_and_json(self):
        rng = random.Random(7)
        streams, src_keys = [], []
        for i, suite in enumerate(("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM")):
            key = bytes(rng.randrange(256) for _ in range(KEY_BYTES[suite]))
            src_keys.append(key)
            streams.append(dict(media="audio", port=40000 + 2 * i, proto="RTP/SAVP", pts=[0, 101],
                                rtpmap={0: "PCMU/8000", 101: "telephone-event/8000"}, label=str(i + 1),
                                direction="sendonly",
                                extra=[f"a=crypto:{i + 1} {suite} inline:{base64.b64encode(key).decode()}|2^31"]))
        body, ctype = siprec_body(streams=streams)
        with self.daemon.client("udp") as c:
            call = Call(c)
            r = call.invite(body, ctype, siprec_headers())
            self.assertStatus(r, 200, "SRTP offer under media.srtp: allow")
            answer = r.body_text()
            ours = []
            for line in answer.splitlines():
                if line.startswith("a=crypto:"):
                    tag, suite, params = line[len("a=crypto:"):].split()[:3]
                    self.assertTrue(params.startswith("inline:"), line)
                    key = base64.b64decode(params[len("inline:"):].split("|")[0])
                    self.assertEqual(len(key), KEY_BYTES[suite], line)
                    ours.append(key)
            self.assertEqual(len(ours), 2, answer)
            self.assertEqual(len(set(ours)), 2, "a fresh key per stream")
            self.assertStatus(call.bye(), 200, "BYE")
        found = recording_for_call(self.daemon.recordings_dir, call.call_id)
        self.assertIsNotNone(found, self._diag("no recording published"))
        path, doc = found
        self.assertEqual([s.get("srtp") for s in doc["streams"]],
                         ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM"], doc["streams"])
        folder = os.path.dirname(path)
        texts = {"daemon log": self.daemon.stderr_text()}
        for name in os.listdir(folder):
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    texts[name] = f.read()
        for key in src_keys + ours:
            needles = [base64.b64encode(key).decode(), key.hex(), key.hex().upper(),
                       base64.b64encode(key[:15]).decode()[:16]]
            for where, text in texts.items():
                for n in needles:
                    self.assertNotIn(n, text, f"key material {n!r} found in {where}")
        self.assertIn("srtp", texts["daemon log"].lower() + json.dumps(doc).lower())


if __name__ == "__main__":
    unittest.main()
