"""Start-up and shutdown: --check-config, bad configuration, ports in use, and
drain on SIGTERM (503 + Retry-After, /readyz 503, BYE to active sessions, exit 0)."""

import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (LOOPBACK, Call, Daemon, SipClient, describe, free_port_pair, siprecd_path,
                     siprec_body, siprec_headers)

RUN_TIMEOUT = 15


def run(args, timeout=RUN_TIMEOUT):
    return subprocess.run([siprecd_path()] + args, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class CheckConfigTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="siprecd-cfg-")
        self.addCleanup(self.tmp.cleanup)

    def test_good_config(self):
        path = write(self.tmp.name, "good.yaml",
                     "sip:\n  max_sessions: 100\n  retry_after_s: 10\n"
                     "media:\n  rtp_ports: 30000-30999\n")
        p = run(["--check-config", path])
        self.assertEqual(p.returncode, 0, f"stdout={p.stdout!r} stderr={p.stderr!r}")
        self.assertIn("config OK", p.stdout + p.stderr)

    def test_empty_config_is_the_default(self):
        path = write(self.tmp.name, "empty.yaml", "")
        p = run(["--check-config", path])
        self.assertEqual(p.returncode, 0, f"stdout={p.stdout!r} stderr={p.stderr!r}")

    def check_bad(self, text: str, key: str):
        path = write(self.tmp.name, "bad.yaml", text)
        p = run(["--check-config", path])
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 1, f"{text!r}: stdout={p.stdout!r} stderr={p.stderr!r}")
        self.assertIn(key, out, f"error must name {key}: {out!r}")
        self.assertNotIn("config OK", out)

    def test_bad_integer(self):
        self.check_bad("sip: {max_sessions: abc}\n", "sip.max_sessions")

    def test_bad_rtp_range(self):
        self.check_bad("media:\n  rtp_ports: 30000-20000\n", "media.rtp_ports")

    def test_bad_listen(self):
        self.check_bad("sip:\n  listen: [\"carrier-pigeon:1.2.3.4:5060\"]\n", "sip.listen")

    def test_unknown_key(self):
        self.check_bad("sip:\n  max_sesions: 10\n", "sip.max_sesions")

    def test_not_yaml(self):
        path = write(self.tmp.name, "junk.yaml", "sip: [unclosed\n  : :\n")
        p = run(["--check-config", path])
        self.assertNotEqual(p.returncode, 0, f"stdout={p.stdout!r} stderr={p.stderr!r}")
        self.assertIn("junk.yaml", p.stdout + p.stderr)

    def test_missing_file(self):
        path = os.path.join(self.tmp.name, "does-not-exist.yaml")
        p = run(["--check-config", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("does-not-exist.yaml", p.stdout + p.stderr)


class StartupFailureTest(unittest.TestCase):

    def start_expect_failure(self, daemon: Daemon, needle: str):
        """The daemon must exit non-zero within RUN_TIMEOUT, never print its
        ready line, and name `needle` on stderr."""
        proc = subprocess.Popen(daemon.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=daemon.tmp, text=True)
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=5)
            self.fail(f"siprecd neither failed nor exited within {RUN_TIMEOUT}s (expected an error "
                      f"naming {needle!r}); killed.\nstdout={out[-1000:]!r}\nstderr={err[-2000:]!r}")
        finally:
            daemon.cleanup()
        self.assertNotEqual(proc.returncode, 0, f"siprecd exited 0: stdout={out!r}")
        self.assertNotIn("siprecd ready", out)
        lines = [ln for ln in err.splitlines() if needle in ln]
        self.assertTrue(lines, f"no stderr line names {needle!r}:\n{err[-2000:]}")

    def test_bad_config_file_exits_nonzero_naming_key(self):
        self.start_expect_failure(Daemon(raw_config="sip: {max_sessions: abc}\n"), "sip.max_sessions")

    def test_bad_flag_value(self):
        d = Daemon()
        d.rtp_min, d.rtp_max = 40000, 30000
        self.start_expect_failure(d, "rtp")

    def test_udp_port_in_use(self):
        d = Daemon(transports=("udp",))
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind((LOOPBACK, d.sip_port))
        try:
            self.start_expect_failure(d, f"{LOOPBACK}:{d.sip_port}")
        finally:
            blocker.close()

    def test_tcp_port_in_use(self):
        d = Daemon(transports=("tcp",))
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind((LOOPBACK, d.sip_port))
        blocker.listen(1)
        try:
            self.start_expect_failure(d, f"{LOOPBACK}:{d.sip_port}")
        finally:
            blocker.close()

    def test_http_port_in_use(self):
        d = Daemon()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind((LOOPBACK, d.http_port))
        blocker.listen(1)
        try:
            self.start_expect_failure(d, f"{LOOPBACK}:{d.http_port}")
        finally:
            blocker.close()


class DrainTest(unittest.TestCase):

    def test_sigterm_drains(self):
        d = Daemon(config={"sip": {"retry_after_s": 11}})
        self.addCleanup(d.cleanup)
        d.start()
        status, _, _ = d.http("/readyz")
        self.assertEqual(status, 200)
        with d.client("udp") as c:
            call = Call(c)
            body, ctype = siprec_body()
            r = call.invite(body, ctype, siprec_headers())
            self.assertEqual(r and r.status, 200, describe(r) + d.diagnostics())

            d.send_signal(signal.SIGTERM)
            # The daemon BYEs the active session; we hold our 200 back so the
            # drain stays in progress while we probe it.
            bye = None
            deadline = time.monotonic() + 10
            while bye is None and time.monotonic() < deadline:
                m = c.recv(0.5)
                if m is not None and m.method == "BYE":
                    bye = m
            self.assertIsNotNone(bye, "no BYE from the draining daemon\n" + d.diagnostics())
            self.assertEqual(bye.header("call-id"), call.call_id)
            self.assertTrue(d.alive(), "exited before the BYE was answered\n" + d.diagnostics())

            status, _, _ = d.http("/readyz")
            self.assertEqual(status, 503, "/readyz while draining\n" + d.diagnostics())
            status, _, _ = d.http("/healthz")
            self.assertEqual(status, 200, "/healthz while draining")

            with d.client("udp") as probe:
                opt = probe.options()
                self.assertEqual(opt and opt.status, 503, "OPTIONS while draining: " + describe(opt))
                self.assertEqual((opt.header("retry-after") or "").split(";")[0].strip(), "11",
                                 describe(opt))
                new = Call(probe)
                r = new.invite(body, ctype, siprec_headers())
                self.assertEqual(r and r.status, 503, "INVITE while draining: " + describe(r))
                self.assertIsNotNone(r.header("retry-after"), describe(r))
            with d.client("tcp") as probe:
                opt = probe.options()
                self.assertEqual(opt and opt.status, 503, "OPTIONS/TCP while draining: " + describe(opt))

            c.reply(bye, 200)
        code = d.wait_exit(15)
        self.assertEqual(code, 0, "exit code after drain\n" + d.diagnostics())

    def test_sigterm_idle_exits_zero(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        self.assertEqual(d.stop(), 0, d.diagnostics())

    def test_sigint_idle_exits_zero(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        d.send_signal(signal.SIGINT)
        self.assertEqual(d.wait_exit(15), 0, d.diagnostics())


if __name__ == "__main__":
    unittest.main(verbosity=2)
