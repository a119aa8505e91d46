"""A step of the wall clock moves no SIP timer: sofia's clock is made steady (the wall time at
start advanced by CLOCK_MONOTONIC, src/sip/sofia_loop.cc), in siprecd and in siprec-src.

sofia-sip reckons every su_timer by CLOCK_REALTIME. Before the fix a wall-clock step (an NTP
step, a VM's clock sync) moved them all: a CI run saw siprec-src end a 6 s call 2.5 s after its
200 OK (issue 8), a forward step fires a session-timer expiry at once (BYE to a live call), a
backward one holds it back by the step.

The step is made by sgw-clock-step (test/tools/clock_step.c), an LD_PRELOAD module that adds
the offset written in a file to the process's CLOCK_REALTIME and leaves CLOCK_MONOTONIC alone:
stepping the real clock needs CAP_SYS_TIME and would step every program on the machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import Call, metadata_xml, multipart, sdp, siprec_headers, wait_until
from test_recording import RecordingTestCase, streams_for
from test_session_timer import end_event, recording_for_call_id, wait_request
from test_siprec_src import siprec_src_path

STEP_S = 3600  # one hour: far beyond any timer of these calls


def clock_step_env(step_file: str) -> dict:
    lib = os.environ.get("SGW_CLOCK_STEP", "")
    if not lib or not os.path.exists(lib):
        raise AssertionError("environment variable SGW_CLOCK_STEP (path of sgw-clock-step.so) is not "
                             "set; run through ctest")
    # The module is preloaded ahead of the ASan runtime of an ASan build (it is not instrumented).
    asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    return {"LD_PRELOAD": lib, "SGW_CLOCK_STEP_FILE": step_file, "ASAN_OPTIONS": asan}


def set_step(path: str, seconds: float):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{seconds}\n")
    os.replace(tmp, path)


class GatewayClockStepTest(RecordingTestCase):
    """siprecd's wall clock steps during a call."""

    CONFIG = {"sip": {"min_session_expires_s": 2}, "media": {"timeout_s": 60}}

    @classmethod
    def setUpClass(cls):
        cls.step_dir = tempfile.mkdtemp(prefix="sgw-clock-step-")
        cls.step_file = os.path.join(cls.step_dir, "offset")
        set_step(cls.step_file, 0)
        cls.ENV = clock_step_env(cls.step_file)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.step_dir, ignore_errors=True)

    def setUp(self):
        set_step(self.step_file, 0)
        super().setUp()

    def invite(self, c, session_expires: str) -> Call:
        call = Call(c)
        hdrs = [h for h in siprec_headers() if h[0] != "Supported"]
        hdrs += [("Supported", "replaces, timer, siprec"), ("Session-Expires", session_expires)]
        body = multipart([("application/sdp", sdp(streams_for("PCMA", 2))),
                          ("application/rs-metadata+xml", metadata_xml(2))])
        r = call.invite(body, 'multipart/mixed;boundary="OSS-unique-boundary-42"', hdrs)
        self.assertStatus(r, 200, "INVITE")
        return call

    def test_forward_step_does_not_expire_the_session(self):
        # Session-Expires 90 s, the SRC refreshes: the gateway would end the session 60 s on.
        # The wall clock jumps an hour ahead: that is no reason to end it.
        with self.daemon.client("udp") as c:
            call = self.invite(c, "90;refresher=uac")
            set_step(self.step_file, STEP_S)
            bye = wait_request(c, "BYE", 3.0)
            self.assertIsNone(bye, self._diag(f"the gateway ended the call after a wall-clock step: "
                                              f"{bye.summary() if bye else ''}"))
            self.assertStatus(call.bye(), 200, "BYE from the SRC")
        doc = recording_for_call_id(self, call.call_id)
        self.assertIn("BYE from SRC", end_event(doc), doc["events"])

    def test_backward_step_does_not_hold_back_the_expiry(self):
        # Session-Expires 3 s, nobody refreshes: the gateway ends the session 2 s on (RFC 4028
        # §10, 1 s before expiry), whatever the wall clock does; an hour back is not an hour more.
        with self.daemon.client("udp") as c:
            call = self.invite(c, "3;refresher=uac")
            t0 = time.monotonic()
            set_step(self.step_file, -STEP_S)
            bye = wait_request(c, "BYE", 8.0)
            elapsed = time.monotonic() - t0
            self.assertIsNotNone(bye, self._diag("no BYE for the expired session after a backward step"))
            self.assertIn("Session expired", bye.header("reason", ""), bye.summary())
            self.assertGreater(elapsed, 1.5, "BYE came before the session could expire")
            c.answer_ok(bye)
        doc = recording_for_call_id(self, call.call_id)
        self.assertIn("session expired", end_event(doc), doc["events"])


class SrcClockStepTest(RecordingTestCase):
    """siprec-src's wall clock steps during its call; the gateway's does not."""

    def test_forward_step_does_not_end_the_call_early(self):
        step_dir = tempfile.mkdtemp(prefix="sgw-clock-step-")
        self.addCleanup(shutil.rmtree, step_dir, True)
        step_file = os.path.join(step_dir, "offset")
        set_step(step_file, 0)
        json_path = os.path.join(step_dir, "src.json")
        received0 = self.daemon.metrics().get("sgw_rtp_packets_received_total") or 0
        argv = [siprec_src_path(), f"sip:127.0.0.1:{self.daemon.sip_port}", "--json", json_path,
                "--calls", "1", "--duration", "4"]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, **clock_step_env(step_file)})
        try:
            # siprec-src sends RTP once it has the 200 OK, when it also sets the call's end
            # timer: step its clock once the gateway receives that RTP.
            started = wait_until(lambda: (self.daemon.metrics().get("sgw_rtp_packets_received_total") or 0)
                                 > received0, 15, 0.05)
            self.assertTrue(started, self._diag("siprec-src's call never sent RTP"))
            set_step(step_file, STEP_S)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, self._diag(f"siprec-src failed: {out}\n{err}"))
        with open(json_path) as f:
            report = json.load(f)
        call_id = report["records"][0]["call_id"]
        doc = recording_for_call_id(self, call_id)
        self.assertIn("BYE from SRC", end_event(doc), doc["events"])
        # The call lasted its 4 s, not the moment the step took to reach the end timer.
        self.assertGreaterEqual(doc["duration_ms"], 3800, doc["events"])
        self.assertLess(doc["duration_ms"], 6000, doc["events"])


if __name__ == "__main__":
    unittest.main()
