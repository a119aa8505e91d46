"""siprecd driven by a real, independent SIP stack: sipp with the XML
scenarios in sipp/. sipp exits 0 only when every call of the run succeeded
(including the ereg checks in the scenarios)."""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import HERE, LOOPBACK, DaemonTestCase, free_port_pair

SCENARIOS = os.path.join(HERE, "sipp")
SIPP_TIMEOUT_S = 20


def sipp_binary() -> str:
    path = os.environ.get("SIPP") or shutil.which("sipp")
    if not path:
        # Not skipped silently: a missing sipp is a failure of the test setup.
        raise AssertionError("sipp not found (install Debian package sip-tester or set SIPP)")
    return path


def free_media_port() -> int:
    """An even port with the next three free on UDP (sipp binds audio and video RTP/RTCP)."""
    for _ in range(200):
        base = random.randrange(10000, 19990, 4)
        socks = []
        try:
            for p in range(base, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((LOOPBACK, p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free media port block for sipp")


class SippTest(DaemonTestCase):

    def run_sipp(self, scenario: str, transport: str = "u1", calls: int = 1, rate: int = 10):
        tmp = tempfile.mkdtemp(prefix="sipp-")
        self.addCleanup(shutil.rmtree, tmp, True)
        err = os.path.join(tmp, "errors.log")
        msgs = os.path.join(tmp, "messages.log")
        args = [sipp_binary(), f"{LOOPBACK}:{self.daemon.sip_port}",
                "-sf", os.path.join(SCENARIOS, scenario),
                "-m", str(calls), "-r", str(rate), "-l", str(calls),
                "-t", transport,
                "-i", LOOPBACK, "-p", str(free_port_pair()),
                "-mi", LOOPBACK, "-mp", str(free_media_port()),
                "-timeout", f"{SIPP_TIMEOUT_S}s", "-timeout_error",
                "-recv_timeout", "5000",
                "-trace_err", "-error_file", err,
                "-trace_msg", "-message_file", msgs,
                "-nostdin"]
        try:
            p = subprocess.run(args, capture_output=True, timeout=SIPP_TIMEOUT_S + 15,
                               stdin=subprocess.DEVNULL, cwd=tmp)
        except subprocess.TimeoutExpired:
            self.fail(self._diag(f"sipp {scenario} did not finish in {SIPP_TIMEOUT_S + 15}s"))
        if p.returncode != 0:
            def tail(path, n=6000):
                try:
                    with open(path, "rb") as f:
                        return f.read()[-n:].decode("utf-8", "replace")
                except OSError:
                    return "(none)"
            self.fail(self._diag(
                f"sipp {scenario} -t {transport} exited {p.returncode}\n"
                f"--- command: {' '.join(args)}\n"
                f"--- sipp stderr:\n{p.stderr.decode('utf-8', 'replace')[-3000:]}\n"
                f"--- sipp errors:\n{tail(err)}\n--- sipp messages:\n{tail(msgs)}"))
        self.assertAlive(f"after sipp {scenario}")

    def test_options_udp(self):
        self.run_sipp("options.xml", "u1")

    def test_options_tcp(self):
        self.run_sipp("options.xml", "t1")

    def test_siprec_call_udp(self):
        self.run_sipp("siprec_call.xml", "u1")
        self.wait_idle()

    def test_siprec_call_tcp(self):
        self.run_sipp("siprec_call.xml", "t1")
        self.wait_idle()

    def test_siprec_calls_several_udp(self):
        # A handful of concurrent sessions from one sipp (distinct Call-IDs).
        self.run_sipp("siprec_call.xml", "u1", calls=5, rate=20)
        self.wait_idle()

    def test_reject_488_udp(self):
        self.run_sipp("reject_488.xml", "u1")

    def test_reject_488_tcp(self):
        self.run_sipp("reject_488.xml", "t1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
