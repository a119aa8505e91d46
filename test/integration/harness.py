"""Integration-test harness: runs the real `siprecd` and talks SIP/HTTP to it.

Standard library only (the tests run on a stock Debian 12 python3).

Pieces:
  * Daemon      -- starts siprecd on free loopback ports (SIP/HTTP by bind-to-0,
                   RTP from free_rtp_range) in temp dirs, waits for
                   the ready line, stops it with SIGTERM and checks the exit code.
                   Its stderr (debug log) is appended to every failure message.
  * SipClient   -- a minimal SIP UAC/UAS over UDP or TCP: builds requests with a
                   proper Via/branch, From tag, Call-ID, CSeq, Max-Forwards and
                   Content-Length, reads responses (provisional included) and
                   requests the daemon sends us (BYE), frames TCP by
                   Content-Length.
  * Call        -- one SIPREC dialog driven by a SipClient (INVITE/ACK,
                   re-INVITE, UPDATE, BYE).
  * siprec_*    -- SDP, RFC 7865 metadata and multipart bodies as SRCs send them.
  * http_get / metrics -- /healthz, /readyz, /metrics.

Every wait is bounded; nothing here sleeps without a deadline.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

LOOPBACK = "127.0.0.1"
SOCKET_TIMEOUT = 2.0      # upper bound of any single socket wait
READY_TIMEOUT = 20.0      # siprecd start-up
STOP_TIMEOUT = 20.0       # SIGTERM -> exit
TRANSACTION_TIMEOUT = 5.0  # request -> final response

HERE = os.path.dirname(os.path.abspath(__file__))


def siprecd_path() -> str:
    """Path of the binary under test, from $SIPRECD (set by ctest)."""
    path = os.environ.get("SIPRECD", "")
    if not path:
        raise AssertionError(
            "environment variable SIPRECD (path of the siprecd binary) is not set; "
            "run through ctest or export SIPRECD=/path/to/siprecd")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"SIPRECD={path!r} is not an executable file")
    return path


# ---------------------------------------------------------------------------
# Ports

def free_port_pair() -> int:
    """A port number free for both UDP and TCP on 127.0.0.1 (bind-port-0 probe)."""
    for _ in range(200):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((LOOPBACK, 0))
            port = u.getsockname()[1]
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind((LOOPBACK, port))
                return port
            except OSError:
                continue
            finally:
                t.close()
        finally:
            u.close()
    raise AssertionError("no free UDP+TCP port pair on 127.0.0.1")


def free_tcp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
    finally:
        s.close()


RTP_CHUNK = 200
_RTP_LOCK_DIR = os.path.join(os.environ.get("TMPDIR") or "/tmp", "sgw-test-rtp-ports")
_RTP_LEASES: dict[int, int] = {}  # first port -> fd of its flock'd lock file


def _ephemeral_ports() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _udp_ports_bind(first: int, count: int) -> bool:
    socks = []
    try:
        for port in range(first, first + count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_rtp_range(count: int = RTP_CHUNK) -> tuple[int, int]:
    """(min, max) of `count` RTP ports (count <= RTP_CHUNK) that are free now and reserved
    for the caller until release_rtp_range(min): never a fixed range, which fails on a busy
    machine ("no free RTP port pair") when another program holds ports in it.

    The range starts a 200-port chunk, even-aligned, outside the kernel's ephemeral port
    range (so client sockets do not take its ports later), whose every UDP port binds on
    127.0.0.1 now. The chunk is reserved with flock() on
    $TMPDIR/sgw-test-rtp-ports/<min>.lock -- the lock the C++ tests' PortRangeLease
    (test/media/test_port_range.h) takes too -- so no other test process, Python or C++,
    gets it while it is held; the kernel drops the lock when the process dies."""
    if not 2 <= count <= RTP_CHUNK:
        raise ValueError(f"count {count} not in 2..{RTP_CHUNK}")
    os.makedirs(_RTP_LOCK_DIR, exist_ok=True)
    lo, hi = _ephemeral_ports()
    bases = [b for b in range(10000, 65536 - RTP_CHUNK + 1, RTP_CHUNK)
             if b + RTP_CHUNK - 1 < lo or b > hi]
    random.shuffle(bases)
    for base in bases:
        if base in _RTP_LEASES:
            continue
        fd = os.open(os.path.join(_RTP_LOCK_DIR, f"{base}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if not _udp_ports_bind(base, RTP_CHUNK):
            os.close(fd)
            continue
        _RTP_LEASES[base] = fd
        return base, base + count - 1
    raise AssertionError(f"no free {RTP_CHUNK}-port RTP chunk on {LOOPBACK} outside the "
                         f"ephemeral range {lo}-{hi}")


def release_rtp_range(first: int):
    """Gives back a range from free_rtp_range (no-op if not held)."""
    fd = _RTP_LEASES.pop(first, None)
    if fd is not None:
        os.close(fd)


def rtp_range() -> tuple[int, int]:
    """A free 200-port RTP range (free_rtp_range), kept until the process exits."""
    return free_rtp_range()


# ---------------------------------------------------------------------------
# YAML (tiny writer for nested dicts of scalars/lists; enough for our configs)

def to_yaml(value, indent: int = 0) -> str:
    pad = "  " * indent
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict):  # a flow map of scalars: - {bucket: "b", zone: "uk"}
                out.append(f"{pad}- {{" + ", ".join(f"{k}: {_yaml_scalar(x)}" for k, x in v.items()) + "}")
            else:
                out.append(f"{pad}- {_yaml_scalar(v)}")
    return "\n".join(x for x in out if x != "")


def _yaml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------
# The daemon

READY_RE = re.compile(r"^siprecd ready: ")

_LIVE: "set[Daemon]" = set()


@atexit.register
def _kill_leftovers():
    # A test run that dies early (exception in a helper, Ctrl-C) must not leave
    # daemons behind: kill, by pid, every daemon this process started.
    for d in list(_LIVE):
        d.kill()


class _PortTaken(Exception):
    """siprecd could not bind a port the harness had probed free (see Daemon.start)."""

    def __init__(self, message: str, port_line: str):
        super().__init__(message)
        self.port_line = port_line


def _port_taken_line(stderr_path: str) -> str | None:
    """siprecd's "cannot listen on ..." line (a SIP or HTTP port taken), if it printed one."""
    try:
        with open(stderr_path, errors="replace") as f:
            for line in f:
                if "cannot listen on" in line and (f"{LOOPBACK}:" in line):
                    return line.strip()
    except OSError:
        pass
    return None


class Daemon:
    """One siprecd process on free loopback ports.

    config: dict written as YAML and passed with --config (CLI flags still set
    the ports and directories). raw_config: YAML text used verbatim instead.
    """

    def __init__(self, config: dict | None = None, raw_config: str | None = None,
                 transports=("udp", "tcp"), log_level: str = "debug", env: dict | None = None):
        self.binary = siprecd_path()
        self.env = env  # added to the environment siprecd starts with
        self.tmp = tempfile.mkdtemp(prefix="siprecd-it-")
        self.sip_port = free_port_pair()
        self.http_port = free_tcp_port()
        self.rtp_min, self.rtp_max = free_rtp_range()
        self._rtp_lease = self.rtp_min
        self.recordings_dir = os.path.join(self.tmp, "recordings")
        self.spool_dir = os.path.join(self.tmp, "spool")
        os.makedirs(self.recordings_dir)
        os.makedirs(self.spool_dir)
        self.transports = transports
        self.config_path = None
        if raw_config is not None or config is not None:
            self.config_path = os.path.join(self.tmp, "siprecd.yaml")
            with open(self.config_path, "w") as f:
                f.write(raw_config if raw_config is not None else to_yaml(config) + "\n")
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.ready_line: str | None = None
        self._ready = threading.Event()
        self._stderr_path = os.path.join(self.tmp, "stderr.log")
        self._stderr_file = None
        self._reader: threading.Thread | None = None
        self._started_before = False  # a restart keeps its ports (Daemon.start)

    # -- command line --------------------------------------------------------
    def argv(self) -> list[str]:
        args = [self.binary]
        for t in self.transports:
            args += ["--listen", f"{t}:{LOOPBACK}:{self.sip_port}"]
        args += ["--http", f"{LOOPBACK}:{self.http_port}",
                 "--media-address", LOOPBACK,
                 "--rtp-ports", f"{self.rtp_min}-{self.rtp_max}",
                 "--recordings-dir", self.recordings_dir,
                 "--spool-dir", self.spool_dir,
                 "--log-level", self.log_level]
        if self.config_path:
            args += ["--config", self.config_path]
        return args

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT) -> "Daemon":
        """Starts siprecd and waits for its ready line. The SIP and HTTP ports were probed free
        (bind to port 0) and released: another program may bind one before siprecd does (they
        are in the ephemeral range, where every outgoing connection takes a port). On the first
        start only, siprecd exiting with "cannot listen on" gets new ports and another try (at
        most 3); a restart keeps its ports (the same node for its peers)."""
        first = not self._started_before
        for attempt in range(3):
            try:
                self._start_once(timeout)
                self._started_before = True
                return self
            except _PortTaken as e:
                if not first or attempt == 2:
                    raise AssertionError(str(e)) from None
                sys.stderr.write(f"harness: {e.port_line}: new ports, starting again\n")
                if self._stderr_file:
                    self._stderr_file.close()
                    self._stderr_file = None
                self.sip_port = free_port_pair()
                self.http_port = free_tcp_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> "Daemon":
        self._stderr_file = open(self._stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr_file,
                                     cwd=self.tmp, env={**os.environ, **self.env} if self.env else None)
        _LIVE.add(self)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                return self
            if self.proc.poll() is not None:
                self._reader.join(1.0)
                msg = (f"siprecd exited with code {self.proc.returncode} before it was ready\n"
                       + self.diagnostics())
                taken = _port_taken_line(self._stderr_path)
                if taken:
                    _LIVE.discard(self)
                    raise _PortTaken(msg, taken)
                raise AssertionError(msg)
        self.kill()
        raise AssertionError(f"siprecd did not print its ready line within {timeout}s\n"
                             + self.diagnostics())

    def _read_stdout(self):
        assert self.proc and self.proc.stdout
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(line)
            if self.ready_line is None and READY_RE.match(line):
                self.ready_line = line
                self._ready.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig=signal.SIGTERM):
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait for the exit; returns the exit code (kills on timeout)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"siprecd did not exit within {timeout}s of SIGTERM\n"
                                     + self.diagnostics())
        return self.proc.returncode

    def kill(self):
        _LIVE.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def cleanup(self):
        self.kill()
        release_rtp_range(self._rtp_lease)
        if self._reader is not None:
            self._reader.join(2.0)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None
        if os.environ.get("SGW_KEEP_TMP"):
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- diagnostics ---------------------------------------------------------
    def stderr_text(self) -> str:
        try:
            with open(self._stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def diagnostics(self, tail: int = 60) -> str:
        lines = self.stderr_text().splitlines()
        code = self.proc.poll() if self.proc else None
        return ("--- siprecd " + " ".join(self.argv()[1:]) + f"\n--- exit code: {code}"
                + "\n--- stdout:\n" + "\n".join(self.stdout_lines[-10:])
                + f"\n--- stderr (last {tail} of {len(lines)} lines):\n"
                + "\n".join(lines[-tail:]))

    # -- helpers -------------------------------------------------------------
    @property
    def sip_addr(self) -> tuple[str, int]:
        return (LOOPBACK, self.sip_port)

    def client(self, transport: str = "udp") -> "SipClient":
        return SipClient(transport, self.sip_addr)

    def http(self, path: str) -> tuple[int, str, dict]:
        return http_get(f"http://{LOOPBACK}:{self.http_port}{path}")

    def metrics(self) -> "Metrics":
        status, body, _ = self.http("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}: {body[:200]}")
        return Metrics(body)


# ---------------------------------------------------------------------------
# HTTP

def http_get(url: str, timeout: float = SOCKET_TIMEOUT) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


class Metrics:
    """Prometheus text exposition, parsed into {(name, labels): value}."""

    LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
    LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = self.LINE.match(line)
            if not m:
                continue
            labels = frozenset(self.LABEL.findall(m.group(2) or ""))
            try:
                self.samples[(m.group(1), labels)] = float(m.group(3))
            except ValueError:
                pass

    def has(self, name: str) -> bool:
        return any(k[0] == name for k in self.samples)

    def get(self, name: str, **labels) -> float:
        """Value of the sample with exactly these labels; 0 when absent (counters
        that have not been touched are often not exported yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05):
    """Polls predicate() until truthy or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


# ---------------------------------------------------------------------------
# Recordings and their audio (sgw-rtp-send sends, sgw-audio-probe measures)

RTP_SEND = os.environ.get("SGW_RTP_SEND", "sgw-rtp-send")
AUDIO_PROBE = os.environ.get("SGW_AUDIO_PROBE", "sgw-audio-probe")


def probe_audio(path: str, min_segment_ms: int = 60, window_ms: int | None = None,
                freq_tolerance_hz: int | None = None) -> dict:
    """sgw-audio-probe's measurement of an audio file (docs/codecs.md): per channel the
    dominant frequency, active time and sounding segments (start_ms, end_ms), in windows of
    window_ms (the probe's default 20 ms when None): times are known to a window."""
    import json
    args = [AUDIO_PROBE, path, "--min-segment-ms", str(min_segment_ms)]
    if window_ms is not None:
        args += ["--window-ms", str(window_ms)]
    if freq_tolerance_hz is not None:
        args += ["--freq-tolerance-hz", str(freq_tolerance_hz)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)


def iso_ms(text: str) -> float:
    """A recording JSON time (2024-06-03T13:37:00.010Z) in ms since the epoch."""
    from datetime import datetime, timezone
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() * 1000


def recording_for_call(recordings_dir: str, call_id: str, timeout: float = 15.0) -> tuple[str, dict] | None:
    """(path, document) of the published recording JSON whose recording_call_id is call_id,
    waiting for it up to timeout; None if none appeared."""
    import glob
    import json
    found = []

    def look():
        for path in glob.glob(os.path.join(recordings_dir, "**", "*.json"), recursive=True):
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue  # not ours, or being replaced
            if isinstance(doc, dict) and doc.get("recording_call_id") == call_id:
                found.append((path, doc))
                return True
        return False
    return found[0] if wait_until(look, timeout, 0.1) else None


def send_tones(ports, duration_ms, tones):
    """Sends a PCMA tone of each frequency in tones to the port of the same position (sgw-rtp-send)."""
    args = [RTP_SEND, "--duration-ms", str(duration_ms)]
    for port, hz in zip(ports, tones):
        args += ["--stream", f"to={LOOPBACK}:{port},codec=PCMA,tone={hz}"]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, timeout=60)


def answered_call(test, client, invite, daemon: "Daemon | None" = None):
    """invite(call) sends the INVITE of a new Call over client and returns the answer; asserts
    200 (the daemon's diagnostics in the message when given) and returns (call, answered RTP ports)."""
    call = Call(client)
    r = invite(call)
    test.assertEqual(r.status if r else None, 200, describe(r) + (daemon.diagnostics() if daemon else ""))
    return call, [m.port for m in call.answer.media]


def answered_call_recording(test, daemon: "Daemon", invite, tones=(440, 1000), duration_ms: int = 1500,
                            during=None, timeout: float | None = 30.0):
    """One recording session on daemon over UDP: answered_call(invite), a PCMA tone per answered
    stream (tones[i] to stream i) for duration_ms, during(call) when given (e.g. a re-INVITE),
    then BYE, asserted 200. Returns (Call-ID, JSON path, document) of the published recording,
    waited for up to timeout (None: returns at once, path and document None)."""
    with daemon.client("udp") as c:
        call, ports = answered_call(test, c, invite, daemon)
        send_tones(ports, duration_ms, tones)
        if during:
            during(call)
        bye = call.bye()
        test.assertEqual(bye.status if bye else None, 200, describe(bye))
    if timeout is None:
        return call.call_id, None, None
    found = recording_for_call(daemon.recordings_dir, call.call_id, timeout)
    test.assertIsNotNone(found, daemon.diagnostics())
    return call.call_id, found[0], found[1]


def wait_rtp_quiet(daemon: "Daemon", quiet_s: float = 0.3, timeout: float = 10.0) -> bool:
    """Waits until the daemon receives RTP (from the call of the caller's test: the counter is
    the daemon's) and then none for quiet_s: the sender has entered a pause (bounded by
    timeout). For tests that must signal inside a pause."""
    deadline = time.monotonic() + timeout
    base = last = daemon.metrics().get("sgw_rtp_packets_received_total")
    changed = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = daemon.metrics().get("sgw_rtp_packets_received_total")
        if now != last:
            last, changed = now, time.monotonic()
        elif last > base and time.monotonic() - changed >= quiet_s:
            return True
    return False


# ---------------------------------------------------------------------------
# SIP messages

COMPACT = {"v": "via", "i": "call-id", "m": "contact", "f": "from", "t": "to",
           "l": "content-length", "c": "content-type", "k": "supported",
           "s": "subject", "e": "content-encoding", "x": "session-expires",
           "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events"}


class SipMessage:
    """A parsed SIP message (request or response)."""

    def __init__(self, raw: bytes):
        self.raw = raw
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = raw.partition(b"\n\n")
        text_lines = re.split(r"\r?\n", head.decode("utf-8", "replace"))
        self.start_line = text_lines[0] if text_lines else ""
        self.headers: list[tuple[str, str]] = []
        for ln in text_lines[1:]:
            if ln[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + ln.strip())
                continue
            name, _, value = ln.partition(":")
            self.headers.append((name.strip(), value.strip()))
        self.body = body
        self.status = 0
        self.reason = ""
        self.method = ""
        self.uri = ""
        if self.start_line.startswith("SIP/2.0 "):
            parts = self.start_line.split(" ", 2)
            try:
                self.status = int(parts[1])
            except (IndexError, ValueError):
                self.status = -1
            self.reason = parts[2] if len(parts) > 2 else ""
        else:
            parts = self.start_line.split(" ")
            self.method = parts[0]
            self.uri = parts[1] if len(parts) > 1 else ""

    @property
    def is_response(self) -> bool:
        return self.status != 0

    def header_all(self, name: str) -> list[str]:
        want = name.lower()
        out = []
        for n, v in self.headers:
            ln = n.lower()
            if COMPACT.get(ln, ln) == want:
                out.append(v)
        return out

    def header(self, name: str, default: str | None = None) -> str | None:
        values = self.header_all(name)
        return values[0] if values else default

    def header_tokens(self, name: str) -> list[str]:
        """Comma-separated header values as lowercase tokens (params stripped)."""
        out = []
        for v in self.header_all(name):
            for tok in v.split(","):
                tok = tok.split(";")[0].strip().lower()
                if tok:
                    out.append(tok)
        return out

    @property
    def cseq(self) -> tuple[int, str]:
        v = self.header("cseq", "0 ?").split()
        return int(v[0]), v[1] if len(v) > 1 else ""

    @property
    def to_tag(self) -> str | None:
        m = re.search(r";\s*tag\s*=\s*([^;>\s,]+)", self.header("to", "") or "")
        return m.group(1) if m else None

    @property
    def content_type(self) -> str:
        return (self.header("content-type", "") or "").split(";")[0].strip().lower()

    def body_text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def contact_uri(self) -> str | None:
        c = self.header("contact")
        if not c:
            return None
        m = re.search(r"<([^>]+)>", c)
        return m.group(1) if m else c.split(";")[0].strip()

    def summary(self) -> str:
        hdrs = "\n".join(f"  {n}: {v}" for n, v in self.headers)
        body = self.body_text()
        if len(body) > 1500:
            body = body[:1500] + f"... ({len(self.body)} bytes)"
        return f"{self.start_line}\n{hdrs}\n\n{body}"

    def __repr__(self):
        return f"<SipMessage {self.start_line!r}>"


def new_branch() -> str:
    return "z9hG4bK-" + uuid.uuid4().hex[:16]


def new_tag() -> str:
    return uuid.uuid4().hex[:10]


def new_call_id() -> str:
    return uuid.uuid4().hex + "@it.example.test"


def build_message(start_line: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """Serialises a message; adds Content-Length unless headers carry one."""
    if isinstance(body, str):
        body = body.encode()
    out = [start_line]
    has_cl = False
    for n, v in headers:
        if n.lower() in ("content-length", "l"):
            has_cl = True
        out.append(f"{n}: {v}")
    if not has_cl:
        out.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(out) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------
# SIP transport client

class SipClient:
    """A SIP peer on one socket: UDP (bound to 127.0.0.1:0) or TCP (connected)."""

    def __init__(self, transport: str, server: tuple[str, int], connect_timeout: float = SOCKET_TIMEOUT):
        self.transport = transport.lower()
        self.server = server
        if self.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((LOOPBACK, 0))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        elif self.transport == "tcp":
            self.sock = socket.create_connection(server, timeout=connect_timeout)
        else:
            raise ValueError(transport)
        self.local = self.sock.getsockname()
        self._buf = b""
        self._queue: list[SipMessage] = []
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def via_transport(self) -> str:
        return self.transport.upper()

    @property
    def local_hostport(self) -> str:
        return f"{self.local[0]}:{self.local[1]}"

    def server_uri(self, user: str = "srs") -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{user}@{self.server[0]}:{self.server[1]}{suffix}"

    def contact(self, params: str = ';+sip.src') -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"<sip:src@{self.local_hostport}{suffix}>{params}"

    def via(self, branch: str) -> str:
        return f"SIP/2.0/{self.via_transport} {self.local_hostport};rport;branch={branch}"

    # -- raw I/O --------------------------------------------------------------
    def send_raw(self, data: bytes):
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def recv(self, timeout: float = SOCKET_TIMEOUT) -> SipMessage | None:
        """Next message from the peer within timeout (bounded), or None."""
        if self._queue:
            return self._queue.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(min(remaining, SOCKET_TIMEOUT))
            if self.transport == "udp":
                try:
                    data, _ = self.sock.recvfrom(65536)
                except (socket.timeout, BlockingIOError):
                    return None
                except ConnectionRefusedError:
                    continue  # ICMP from an earlier send; keep reading
                if not data.strip():
                    continue  # keep-alive
                return SipMessage(data)
            msg = self._parse_stream()
            if msg is not None:
                return msg
            if self.closed:
                return None
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, OSError):
                self.closed = True
                return None
            if not chunk:
                self.closed = True
                msg = self._parse_stream()
                return msg
            self._buf += chunk

    def _parse_stream(self) -> SipMessage | None:
        # RFC 3261 §18.3: framing by Content-Length; CRLFs between messages are keep-alives.
        while self._buf.startswith(b"\r\n"):
            self._buf = self._buf[2:]
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._buf[:end].decode("utf-8", "replace")
        m = re.search(r"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head)
        length = int(m.group(1)) if m else 0
        total = end + 4 + length
        if len(self._buf) < total:
            return None
        raw, self._buf = self._buf[:total], self._buf[total:]
        return SipMessage(raw)

    def peer_closed(self, timeout: float = 0.5) -> bool:
        """TCP only: True if the daemon closed the connection (EOF) within timeout."""
        if self.closed:
            return True
        self.recv(timeout)
        return self.closed

    # -- requests -------------------------------------------------------------
    def request(self, method: str, uri: str | None = None, *, call_id: str | None = None,
                from_tag: str | None = None, to_tag: str | None = None, cseq: int = 1,
                branch: str | None = None, headers: list[tuple[str, str]] | None = None,
                body: bytes | str = b"", content_type: str | None = None,
                contact: bool = True, cseq_method: str | None = None) -> tuple[bytes, dict]:
        """Builds a request; returns (bytes, info) where info holds the ids used."""
        uri = uri or self.server_uri()
        branch = branch or new_branch()
        call_id = call_id or new_call_id()
        from_tag = from_tag or new_tag()
        to = f"<sip:srs@{self.server[0]}>" + (f";tag={to_tag}" if to_tag else "")
        hdrs = [("Via", self.via(branch)),
                ("Max-Forwards", "70"),
                ("From", f"<sip:src@{self.local[0]}>;tag={from_tag}"),
                ("To", to),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} {cseq_method or method}")]
        if contact:
            hdrs.append(("Contact", self.contact()))
        hdrs += headers or []
        if body and content_type:
            hdrs.append(("Content-Type", content_type))
        info = dict(method=method, uri=uri, branch=branch, call_id=call_id, from_tag=from_tag,
                    to_tag=to_tag, cseq=cseq, headers=hdrs)
        return build_message(f"{method} {uri} SIP/2.0", hdrs, body if isinstance(body, bytes) else body.encode()), info

    def transact(self, data: bytes, info: dict | None = None, timeout: float = TRANSACTION_TIMEOUT,
                 on_request=None) -> tuple[SipMessage | None, list[SipMessage]]:
        """Sends a request and reads until a final response for the same CSeq/Call-ID.

        Returns (final or None, all responses received). For a non-2xx final to
        an INVITE the ACK (same branch, RFC 3261 §17.1.1.3) is sent here.
        Requests from the daemon meanwhile go to on_request (default: 200 OK).
        """
        self.send_raw(data)
        responses: list[SipMessage] = []
        deadline = time.monotonic() + timeout
        call_id = info["call_id"] if info else None
        while time.monotonic() < deadline:
            msg = self.recv(min(SOCKET_TIMEOUT, max(0.01, deadline - time.monotonic())))
            if msg is None:
                if self.transport == "tcp" and self.closed:
                    break
                continue
            if not msg.is_response:
                (on_request or self.answer_ok)(msg)
                continue
            if call_id and msg.header("call-id") != call_id:
                continue
            if info and msg.cseq[1] != info.get("cseq_method", info["method"]):
                if msg.cseq[1] != info["method"]:
                    continue
            responses.append(msg)
            if msg.status >= 200:
                if info and info["method"] == "INVITE" and msg.status >= 300:
                    self.send_raw(self.ack_for_failure(info, msg))
                return msg, responses
        return None, responses

    def ack_for_failure(self, info: dict, resp: SipMessage) -> bytes:
        hdrs = [("Via", self.via(info["branch"])), ("Max-Forwards", "70"),
                ("From", resp.header("from")), ("To", resp.header("to")),
                ("Call-ID", info["call_id"]), ("CSeq", f"{info['cseq']} ACK")]
        return build_message(f"ACK {info['uri']} SIP/2.0", hdrs)

    def reply(self, req: SipMessage, status: int, reason: str = "OK",
              extra: list[tuple[str, str]] | None = None, body: bytes = b""):
        hdrs = [("Via", v) for v in req.header_all("via")]
        to = req.header("to") or ""
        if ";tag=" not in to.replace(" ", ""):
            to += f";tag={new_tag()}"
        hdrs += [("From", req.header("from")), ("To", to), ("Call-ID", req.header("call-id")),
                 ("CSeq", req.header("cseq"))]
        hdrs += extra or []
        self.send_raw(build_message(f"SIP/2.0 {status} {reason}", hdrs, body))

    def answer_ok(self, req: SipMessage):
        if req.method != "ACK":
            self.reply(req, 200)

    def options(self, timeout: float = TRANSACTION_TIMEOUT) -> SipMessage | None:
        data, info = self.request("OPTIONS", headers=[("Accept", "application/sdp")])
        final, _ = self.transact(data, info, timeout)
        return final


def options_ok(daemon: Daemon, transport: str = "udp") -> tuple[bool, str]:
    """Liveness probe: a fresh OPTIONS gets 200 (returns (ok, description))."""
    try:
        with daemon.client(transport) as c:
            r = c.options(timeout=3.0)
    except OSError as e:
        return False, f"OPTIONS over {transport}: {e}"
    if r is None:
        return False, f"OPTIONS over {transport}: no response"
    return r.status == 200, f"OPTIONS over {transport}: {r.start_line}"


# ---------------------------------------------------------------------------
# SIPREC bodies (RFC 7866 / RFC 7865)

def sdp(streams: list[dict] | None = None, *, origin_ip: str = "127.0.0.1", version: int = 1,
        session_name: str = "SIPREC") -> str:
    """An SDP offer. Each stream: dict(media='audio', port=..., pts=[0, 8, 101],
    rtpmap={...}, direction='sendonly', label='1', extra=[...])."""
    if streams is None:
        streams = siprec_streams()
    lines = ["v=0", f"o=SRC 2890844526 {version} IN IP4 {origin_ip}", f"s={session_name}",
             f"c=IN IP4 {origin_ip}", "t=0 0"]
    for s in streams:
        media = s.get("media", "audio")
        proto = s.get("proto", "RTP/AVP")
        pts = s.get("pts", [0, 8, 101])
        lines.append(f"m={media} {s.get('port', 40000)} {proto} {' '.join(str(p) for p in pts)}")
        rtpmap = s.get("rtpmap", {0: "PCMU/8000", 8: "PCMA/8000", 101: "telephone-event/8000"})
        for pt in pts:
            if pt in rtpmap:
                lines.append(f"a=rtpmap:{pt} {rtpmap[pt]}")
        if 101 in pts and 101 in rtpmap and "telephone-event" in rtpmap[101]:
            lines.append("a=fmtp:101 0-15")
        if s.get("label") is not None:
            lines.append(f"a=label:{s['label']}")
        if s.get("direction"):
            lines.append(f"a={s['direction']}")
        lines += s.get("extra", [])
    return "\r\n".join(lines) + "\r\n"


def siprec_streams(n: int = 2, direction: str = "sendonly", base_port: int = 40000) -> list[dict]:
    return [dict(media="audio", port=base_port + 2 * i, pts=[0, 8, 101], label=str(i + 1),
                 direction=direction) for i in range(n)]


GENESYS_CONVERSATION_ID = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def metadata_xml(n_streams: int = 2, *, pad_to: int = 0, conversation_id: str = GENESYS_CONVERSATION_ID,
                 datamode: str = "complete") -> str:
    """RFC 7865 metadata as a Genesys Edge sends it: one session, two
    participants (customer and agent), one stream per participant, labels 1..n.
    pad_to: grow the document with extra (well-formed) participants until it
    is at least that many bytes."""
    session_id = "hVpd7YQgRW2nD22h7q60JQ=="
    group_id = "7+OTCyoxTmqmqyA/1weDAg=="
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>",
        f"  <datamode>{datamode}</datamode>",
        f'  <group group_id="{group_id}">',
        "    <associate-time>2024-05-06T10:20:30Z</associate-time>",
        "  </group>",
        f'  <session session_id="{session_id}">',
        "    <sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID>",
        f"    <group-ref>{group_id}</group-ref>",
        "    <start-time>2024-05-06T10:20:30Z</start-time>",
        '    <extensiondata xmlns:gen="http://genesys.com/siprec">',
        f"      <gen:GenesysConversationID>{conversation_id}</gen:GenesysConversationID>",
        "    </extensiondata>",
        "  </session>",
    ]
    participants = [("srfBElmCRp2QB23b7Mpk0w==", "sip:+15551230001@customer.example.com", "Customer"),
                    ("zSfPoSvdSDCmU3A3TRDxAw==", "sip:agent42@agents.example.com", "Agent 42")]
    streams = [(f"UAAMm5GRQKSCMVvLyl4r{i:02d}w==", str(i + 1)) for i in range(n_streams)]
    for pid, aor, name in participants:
        parts += [f'  <participant participant_id="{pid}">',
                  f'    <nameID aor="{aor}">',
                  f'      <name xml:lang="en">{name}</name>',
                  "    </nameID>",
                  "  </participant>"]
    for sid, label in streams:
        parts += [f'  <stream stream_id="{sid}" session_id="{session_id}">',
                  f"    <label>{label}</label>",
                  "  </stream>"]
    parts += [f'  <sessionrecordingassoc session_id="{session_id}">',
              "    <associate-time>2024-05-06T10:20:30Z</associate-time>",
              "  </sessionrecordingassoc>"]
    for i, (pid, _, _) in enumerate(participants):
        send = streams[i % len(streams)][0] if streams else ""
        parts += [f'  <participantsessionassoc participant_id="{pid}" session_id="{session_id}">',
                  "    <associate-time>2024-05-06T10:20:30Z</associate-time>",
                  "  </participantsessionassoc>",
                  f'  <participantstreamassoc participant_id="{pid}">',
                  f"    <send>{send}</send>"]
        for sid, _ in streams:
            if sid != send:
                parts.append(f"    <recv>{sid}</recv>")
        parts.append("  </participantstreamassoc>")
    closing = "</recording>"
    doc = "\n".join(parts)
    i = 0
    while len(doc) + len(closing) + 1 < pad_to:
        pid = f"pad{i:06d}Participant000000000=="
        doc += ("\n" + f'  <participant participant_id="{pid}">'
                f'<nameID aor="sip:observer{i:06d}@pad.example.com">'
                f'<name xml:lang="en">Observer number {i:06d} padding the metadata document</name>'
                "</nameID></participant>")
        i += 1
    return doc + "\n" + closing + "\n"


def multipart(parts: list[tuple[str, bytes | str]], boundary: str = "OSS-unique-boundary-42",
              extra_part_headers: dict | None = None) -> bytes:
    """multipart/mixed body (RFC 2046) from (content-type, content) parts."""
    out = b""
    for ctype, content in parts:
        if isinstance(content, str):
            content = content.encode()
        out += f"--{boundary}\r\nContent-Type: {ctype}\r\n".encode()
        if ctype == "application/rs-metadata+xml":
            out += b"Content-Disposition: recording-session\r\n"
        for k, v in (extra_part_headers or {}).items():
            out += f"{k}: {v}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out


def siprec_body(n_streams: int = 2, *, metadata_first: bool = False, pad_to: int = 0,
                boundary: str = "OSS-unique-boundary-42", streams: list[dict] | None = None,
                direction: str = "sendonly") -> tuple[bytes, str]:
    """(body, content-type) of a SIPREC INVITE: SDP + rs-metadata."""
    s = sdp(streams if streams is not None else siprec_streams(n_streams, direction))
    md = metadata_xml(len(streams) if streams is not None else n_streams, pad_to=pad_to)
    parts = [("application/sdp", s), ("application/rs-metadata+xml", md)]
    if metadata_first:
        parts.reverse()
    return multipart(parts, boundary), f'multipart/mixed;boundary="{boundary}"'


def siprec_headers(require_siprec: bool = True) -> list[tuple[str, str]]:
    hdrs = [("Supported", "replaces, timer, siprec"),
            ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"),
            ("User-Agent", "Genesys-Edge/1.0 (integration test)"),
            ("X-GenesysConversationID", GENESYS_CONVERSATION_ID),
            ("Accept", "application/sdp, application/rs-metadata+xml")]
    if require_siprec:
        hdrs.insert(0, ("Require", "siprec"))
    return hdrs


# ---------------------------------------------------------------------------
# SDP answers

class SdpMedia:
    def __init__(self, line: str):
        f = line[2:].split()
        self.media = f[0]
        self.port = int(f[1]) if len(f) > 1 and f[1].isdigit() else -1
        self.proto = f[2] if len(f) > 2 else ""
        self.fmts = f[3:]
        self.attrs: list[str] = []
        self.conn: str | None = None

    def attr(self, name: str) -> list[str]:
        out = []
        for a in self.attrs:
            n, _, v = a.partition(":")
            if n == name:
                out.append(v)
        return out

    @property
    def direction(self) -> str:
        for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
            if d in self.attrs:
                return d
        return "sendrecv"

    @property
    def label(self) -> str | None:
        v = self.attr("label")
        return v[0] if v else None


class Sdp:
    def __init__(self, text: str):
        self.text = text
        self.session_conn: str | None = None
        self.session_attrs: list[str] = []
        self.media: list[SdpMedia] = []
        for line in re.split(r"\r?\n", text):
            if len(line) < 2 or line[1] != "=":
                continue
            kind, value = line[0], line[2:]
            if kind == "m":
                self.media.append(SdpMedia(line))
            elif kind == "c":
                addr = value.split()[-1] if value.split() else ""
                if self.media:
                    self.media[-1].conn = addr
                else:
                    self.session_conn = addr
            elif kind == "a":
                (self.media[-1].attrs if self.media else self.session_attrs).append(value)

    def conn_for(self, m: SdpMedia) -> str | None:
        return m.conn or self.session_conn


# ---------------------------------------------------------------------------
# A SIPREC call (SRC side)

class Call:
    """One recording session from the SRC's side, over a SipClient."""

    def __init__(self, client: SipClient):
        self.c = client
        self.call_id = new_call_id()
        self.from_tag = new_tag()
        self.to_tag: str | None = None
        self.cseq = 0
        self.remote_target: str | None = None
        self.last_invite_info: dict | None = None
        self.final: SipMessage | None = None
        self.answer: Sdp | None = None

    def _req(self, method: str, **kw) -> tuple[bytes, dict]:
        if method not in ("ACK", "CANCEL"):
            self.cseq += 1
        uri = self.remote_target if (self.to_tag and self.remote_target) else None
        return self.c.request(method, uri, call_id=self.call_id, from_tag=self.from_tag,
                              to_tag=self.to_tag, cseq=kw.pop("cseq", self.cseq), **kw)

    def invite(self, body: bytes | str = b"", content_type: str | None = None,
               headers: list[tuple[str, str]] | None = None, timeout: float = TRANSACTION_TIMEOUT,
               ack: bool = True) -> SipMessage | None:
        """Sends (re-)INVITE; on 2xx stores the dialog and sends the ACK."""
        data, info = self._req("INVITE", body=body, content_type=content_type, headers=headers)
        self.last_invite_info = info
        final, self.provisionals = self.c.transact(data, info, timeout)
        self.final = final
        if final is not None and 200 <= final.status < 300:
            if self.to_tag is None:
                self.to_tag = final.to_tag
                self.remote_target = final.contact_uri() or self.remote_target
            if final.content_type == "application/sdp":
                self.answer = Sdp(final.body_text())
            if ack:
                self.ack(final)
        return final

    def ack(self, final: SipMessage):
        data, _ = self._req("ACK", cseq=final.cseq[0])
        self.c.send_raw(data)

    def request(self, method: str, body: bytes | str = b"", content_type: str | None = None,
                headers: list[tuple[str, str]] | None = None,
                timeout: float = TRANSACTION_TIMEOUT) -> SipMessage | None:
        data, info = self._req(method, body=body, content_type=content_type, headers=headers,
                               contact=method in ("UPDATE",))
        final, _ = self.c.transact(data, info, timeout)
        return final

    def bye(self, timeout: float = TRANSACTION_TIMEOUT) -> SipMessage | None:
        return self.request("BYE", timeout=timeout)


def describe(resp: SipMessage | None) -> str:
    return "no response" if resp is None else resp.summary()


class DaemonTestCase(unittest.TestCase):
    """One siprecd per test class. Subclasses set CONFIG (dict) if needed.

    The daemon's stderr is attached to every failure; at the end of the class
    the daemon must exit 0 on SIGTERM.
    """

    CONFIG: dict | None = None
    ENV: dict | None = None  # added to siprecd's environment
    daemon: Daemon

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(config=cls.CONFIG, env=cls.ENV)
        try:
            cls.daemon.start()
        except BaseException:
            cls.daemon.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        d = cls.daemon
        try:
            if d.alive():
                code = d.stop()
                if code != 0:
                    raise AssertionError(f"siprecd exited with {code} after SIGTERM\n" + d.diagnostics())
            else:
                raise AssertionError("siprecd was not running at the end of the test class\n"
                                     + d.diagnostics())
        finally:
            d.cleanup()

    def setUp(self):
        if not self.daemon.alive():
            self.fail("siprecd is not running (crashed in an earlier test?)\n" + self.daemon.diagnostics())
        # Sessions a failed earlier test left behind must not fail this one.
        self.base_active = self.daemon.metrics().get("sgw_active_sessions")

    # Attach the daemon's log to failures.
    def _diag(self, msg: str) -> str:
        return msg + "\n" + self.daemon.diagnostics(40)

    def assertStatus(self, resp: SipMessage | None, status: int, what: str = ""):
        if resp is None or resp.status != status:
            self.fail(self._diag(f"{what}: expected {status}, got:\n{describe(resp)}"))

    def assertAlive(self, what: str = ""):
        if not self.daemon.alive():
            self.fail(self._diag(f"siprecd died ({what})"))
        ok, desc = options_ok(self.daemon)
        if not ok:
            self.fail(self._diag(f"siprecd does not answer OPTIONS 200 ({what}): {desc}"))

    # -- shared checks ------------------------------------------------------
    def check_answer(self, resp: SipMessage, offer_streams: list[dict], what: str = "") -> Sdp:
        """RFC 7866 §8.1.1: the SRS answers every offered m-line, in order,
        recvonly (inactive if offered inactive), echoing a=label, with our
        address and a port in the rtp range (0 when rejected)."""
        self.assertEqual(resp.content_type, "application/sdp",
                         self._diag(f"{what}: 200 must carry application/sdp\n{resp.summary()}"))
        ans = Sdp(resp.body_text())
        self.assertEqual(len(ans.media), len(offer_streams),
                         self._diag(f"{what}: answer has {len(ans.media)} m-lines for "
                                    f"{len(offer_streams)} offered\n{resp.summary()}"))
        d = self.daemon
        for i, (m, o) in enumerate(zip(ans.media, offer_streams)):
            ctx = f"{what}: m-line {i}: {resp.summary()}"
            self.assertEqual(m.media, o.get("media", "audio"), ctx)
            if o.get("port", 40000) == 0 or o.get("rejected"):
                self.assertEqual(m.port, 0, ctx)
                continue
            self.assertNotEqual(m.port, 0, ctx)
            self.assertTrue(d.rtp_min <= m.port <= d.rtp_max,
                            self._diag(f"port {m.port} outside {d.rtp_min}-{d.rtp_max}; {ctx}"))
            self.assertEqual(ans.conn_for(m), LOOPBACK, ctx)
            expected_dir = "inactive" if o.get("direction") == "inactive" else "recvonly"
            self.assertEqual(m.direction, expected_dir, ctx)
            if o.get("label") is not None:
                self.assertEqual(m.label, o["label"], ctx)
        return ans

    def wait_idle(self, timeout: float = 5.0):
        """sgw_active_sessions back to where it was when the test started."""
        base = getattr(self, "base_active", 0.0)
        ok = wait_until(lambda: self.daemon.metrics().get("sgw_active_sessions") <= base, timeout)
        if not ok:
            self.fail(self._diag(f"sgw_active_sessions did not return to {base:g}:\n"
                                 + "\n".join(l for l in self.daemon.metrics().text.splitlines()
                                             if "active" in l)))


# ---------------------------------------------------------------------------
# RFC 4475 notation (§2): files under torture/ use the RFC's conventions, which
# render() turns into the bytes they stand for:
#   * every line ends with CRLF (the file itself uses LF);
#   * <allOneLine> ... </allOneLine>: the enclosed lines form one line;
#   * <hex>0D0A</hex>: the bytes given in hex;
#   * <repeat count=N>text</repeat>: text repeated N times.

_HEX = re.compile(r"<hex>([0-9A-Fa-f\s]*)</hex>")
_REPEAT = re.compile(r"<repeat count=(\d+)>(.*?)</repeat>", re.S)


def render_rfc4475(text: str) -> bytes:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    joined: list[str] = []
    inside = False
    for line in lines:
        if line == "<allOneLine>":
            inside = True
            joined.append("")
            continue
        if line == "</allOneLine>":
            inside = False
            continue
        if inside:
            joined[-1] += line
        else:
            joined.append(line)
    text = "".join(line + "\r\n" for line in joined)
    text = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), text)
    out = b""
    pos = 0
    for m in _HEX.finditer(text):
        out += text[pos:m.start()].encode("utf-8")
        out += bytes.fromhex("".join(m.group(1).split()))
        pos = m.end()
    return out + text[pos:].encode("utf-8")


def load_torture(name: str) -> bytes:
    with open(os.path.join(HERE, "torture", "rfc4475", name + ".txt"), encoding="utf-8") as f:
        return render_rfc4475(f.read())
