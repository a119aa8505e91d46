"""Torture: the RFC 4475 messages (torture/rfc4475/*.txt) and our own hostile
SIPREC messages, each sent over UDP and over TCP (new socket per message).

After every message: the daemon is alive and a fresh OPTIONS gets 200. Per
message an expectation (EXPECT below) says what answer is acceptable:
  valid   -- RFC 4475 §3.1.1 (and other well-formed) messages: any answer.
  lenient -- the RFC allows accepting or rejecting: any answer.
  reject  -- only a 4xx (or the listed codes), or no answer; never 2xx.
  ignore  -- responses sent to us as if we were a UAC: no answer expected.
Any 2xx to an INVITE is hung up (ACK + BYE) so no session is left behind.

The RFC's messages carry Via sent-by hosts in 192.0.2.0/24; a response would
go there. So, for each message in the stream, the top Via's transport and
sent-by host are rewritten to our socket (nothing else changes) -- see
docs/testing.md.
"""

import os
import random
import re
import socket
import time
import unittest

from harness import (HERE, LOOPBACK, DaemonTestCase, SipClient, SipMessage, build_message,
                     describe, load_torture, metadata_xml, multipart, new_branch, new_call_id,
                     new_tag, options_ok, sdp, siprec_headers, siprec_streams)

# name -> (section, expectation, extra acceptable non-4xx codes)
EXPECT = {
    # 3.1.1 valid messages
    "wsinv": ("3.1.1.1", "valid", ()), "intmeth": ("3.1.1.2", "valid", ()),
    "esc01": ("3.1.1.3", "valid", ()), "escnull": ("3.1.1.4", "valid", ()),
    "esc02": ("3.1.1.5", "valid", ()), "lwsdisp": ("3.1.1.6", "valid", ()),
    "longreq": ("3.1.1.7", "valid", ()), "dblreq": ("3.1.1.8", "valid", ()),
    "semiuri": ("3.1.1.9", "valid", ()), "transports": ("3.1.1.10", "valid", ()),
    "mpart01": ("3.1.1.11", "valid", ()), "unreason": ("3.1.1.12", "ignore", ()),
    "noreason": ("3.1.1.13", "ignore", ()),
    # 3.1.2 invalid messages
    "badinv01": ("3.1.2.1", "reject", ()), "clerr": ("3.1.2.2", "reject", ()),
    "ncl": ("3.1.2.3", "reject", ()), "scalar02": ("3.1.2.4", "reject", ()),
    "scalarlg": ("3.1.2.5", "ignore", ()), "quotbal": ("3.1.2.6", "lenient", ()),
    "ltgtruri": ("3.1.2.7", "reject", ()), "lwsruri": ("3.1.2.8", "reject", ()),
    "lwsstart": ("3.1.2.9", "lenient", ()), "trws": ("3.1.2.10", "lenient", ()),
    "escruri": ("3.1.2.11", "lenient", ()), "baddate": ("3.1.2.12", "lenient", ()),
    "regbadct": ("3.1.2.13", "lenient", ()), "badaspec": ("3.1.2.14", "lenient", ()),
    "baddn": ("3.1.2.15", "lenient", ()), "badvers": ("3.1.2.16", "reject", (505,)),
    "mismatch01": ("3.1.2.17", "reject", ()), "mismatch02": ("3.1.2.18", "reject", (501,)),
    "bigcode": ("3.1.2.19", "ignore", ()),
    # 3.2 transaction layer
    "badbranch": ("3.2.1", "valid", ()),
    # 3.3 application layer
    "insuf": ("3.3.1", "reject", ()), "unkscm": ("3.3.2", "lenient", ()),
    "novelsc": ("3.3.3", "lenient", ()), "unksm2": ("3.3.4", "lenient", ()),
    "bext01": ("3.3.5", "reject", ()), "invut": ("3.3.6", "reject", ()),
    "regaut01": ("3.3.7", "lenient", ()), "multi01": ("3.3.8", "reject", ()),
    "mcl01": ("3.3.9", "reject", ()), "bcast": ("3.3.10", "ignore", ()),
    "zeromf": ("3.3.11", "lenient", ()), "cparam01": ("3.3.12", "lenient", ()),
    "cparam02": ("3.3.13", "lenient", ()), "regescrt": ("3.3.14", "lenient", ()),
    "sdp01": ("3.3.15", "lenient", ()),
    # 3.4 backward compatibility
    "inv2543": ("3.4.1", "lenient", ()),
}

VIA_RE = re.compile(rb"(?im)^(via|v)([ \t]*:[ \t]*SIP[ \t\r\n]*/[ \t\r\n]*[0-9.]+[ \t\r\n]*/[ \t\r\n]*)"
                    rb"([A-Za-z]+)([ \t\r\n]+)([^;,\s]+)")
START_RE = re.compile(rb"(?:^|\r\n\r\n(?:\r\n)*)(?=[A-Za-z!%'*+.`~_0-9-]+ |SIP/)")

WAIT_FINAL = 1.0     # per message, for a final answer
WAIT_IGNORED = 0.3   # for messages that must not be answered
RSS_LIMIT_KB = 256 * 1024


def retarget(raw: bytes, transport: str, hostport: str) -> bytes:
    """Rewrites the top Via of every message in raw to transport/hostport."""
    starts = [m.end() if m.group(0).startswith(b"\r\n") else m.start() for m in START_RE.finditer(raw)]
    starts = sorted(set(starts)) or [0]
    out = b""
    pos = 0
    for i, st in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(raw)
        seg = raw[st:end]
        seg = VIA_RE.sub(lambda m: m.group(1) + m.group(2) + transport.upper().encode() + m.group(4)
                         + hostport.encode(), seg, count=1)
        out += raw[pos:st] + seg
        pos = end
    return out + raw[pos:]


def vm_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------------------
# Our own hostile SIPREC messages. Each builder gets the client and returns bytes.

def _invite(c: SipClient, body: bytes, ctype: str | None, extra=None, content_length=None) -> bytes:
    hdrs = [("Via", c.via(new_branch())), ("Max-Forwards", "70"),
            ("From", f"<sip:src@{c.local[0]}>;tag={new_tag()}"), ("To", f"<sip:srs@{c.server[0]}>"),
            ("Call-ID", new_call_id()), ("CSeq", "1 INVITE"), ("Contact", c.contact())]
    hdrs += siprec_headers() + (extra or [])
    if ctype:
        hdrs.append(("Content-Type", ctype))
    if content_length is not None:
        hdrs.append(("Content-Length", str(content_length)))
    return build_message(f"INVITE {c.server_uri()} SIP/2.0", hdrs, body)


def _mp(parts, boundary="b0"):
    return multipart(parts, boundary), f"multipart/mixed;boundary={boundary}"


def own_wrong_boundary(c):
    body, _ = _mp([("application/sdp", sdp()), ("application/rs-metadata+xml", metadata_xml())], "real")
    return _invite(c, body, "multipart/mixed;boundary=other")


def own_unterminated_multipart(c):
    body = (b"--b0\r\nContent-Type: application/sdp\r\n\r\n" + sdp().encode()
            + b"\r\n--b0\r\nContent-Type: application/rs-metadata+xml\r\n\r\n" + metadata_xml().encode())
    return _invite(c, body, "multipart/mixed;boundary=b0")


def own_nested_multipart(c, depth=200):
    inner, ctype = _mp([("application/sdp", sdp()), ("application/rs-metadata+xml", metadata_xml())], "n0")
    for i in range(1, depth):
        inner = (f"--n{i}\r\nContent-Type: {ctype}\r\n\r\n").encode() + inner + f"\r\n--n{i}--\r\n".encode()
        ctype = f"multipart/mixed;boundary=n{i}"
    return _invite(c, inner, ctype)


def own_sdp_1000_mlines(c):
    # Minimal m-sections (~39 bytes each) so 1000 of them fit one UDP datagram.
    streams = [dict(media="audio", port=40000 + 2 * (i % 10000), pts=[0], rtpmap={},
                    label=str(i + 1)) for i in range(1000)]
    return _invite(c, sdp(streams).encode(), "application/sdp")


def own_sdp_garbage(c):
    rnd = random.Random(4475)
    junk = "\r\n".join("".join(rnd.choice("=abcmv0123 /:\t") for _ in range(40)) for _ in range(50))
    return _invite(c, ("v=0\r\nm=\r\nm=audio x y z\r\nc=IN IP9 ::::\r\n" + junk).encode(), "application/sdp")


def own_billion_laughs(c):
    lol = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
           + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
                     for i in range(1, 10))
           + "]>\n<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode>"
           "<session session_id=\"x\"><sipSessionID>&lol9;</sipSessionID></session></recording>\n")
    body, ctype = _mp([("application/sdp", sdp()), ("application/rs-metadata+xml", lol)])
    return _invite(c, body, ctype)


def own_deep_xml(c, depth=10000):
    if c.transport == "udp":
        depth = 7000  # 10000 levels do not fit one datagram (7 bytes a level)
    xml = ("<?xml version='1.0'?><recording xmlns='urn:ietf:params:xml:ns:recording:1'>"
           + "<a>" * depth + "x" + "</a>" * depth + "</recording>")
    body, ctype = _mp([("application/sdp", sdp()), ("application/rs-metadata+xml", xml)])
    return _invite(c, body, ctype)


def own_invalid_utf8(c):
    md = metadata_xml().replace("Agent 42", "Agent \udcff\udcfe").encode("utf-8", "surrogateescape")
    body, ctype = _mp([("application/sdp", sdp().encode()), ("application/rs-metadata+xml", md)])
    return _invite(c, body, ctype)


def own_invalid_utf8_headers(c):
    raw = _invite(c, sdp().encode(), "application/sdp")
    return raw.replace(b"User-Agent: ", b"User-Agent: \xff\xfe\xc3\x28 ", 1)


def own_cl_larger(c):
    return _invite(c, sdp().encode(), "application/sdp", content_length=len(sdp()) + 500)


def own_cl_smaller(c):
    body, ctype = _mp([("application/sdp", sdp()), ("application/rs-metadata+xml", metadata_xml())])
    return _invite(c, body, ctype, content_length=len(body) // 3)


def own_zero_length(c):
    return b""


def own_random_datagram(c):
    return random.Random(65507).randbytes(65507)


def own_garbage_stream(c):
    return random.Random(7866).randbytes(64 * 1024)


def own_nul_in_request_line(c):
    return _invite(c, sdp().encode(), "application/sdp").replace(b"INVITE sip", b"INV\x00ITE sip", 1)


def own_many_headers(c):
    return _invite(c, sdp().encode(), "application/sdp",
                   extra=[(f"X-H{i}", "v") for i in range(4000)])


def own_negative_port_sdp(c):
    s = sdp().replace("m=audio 40000", "m=audio -1").replace("m=audio 40002", "m=audio 99999999999")
    return _invite(c, s.encode(), "application/sdp")


def own_huge_boundary(c):
    b = "B" * 5000
    body, _ = _mp([("application/sdp", sdp()), ("application/rs-metadata+xml", metadata_xml())], b)
    return _invite(c, body, f"multipart/mixed;boundary={b}")


# name -> (builder, transports, expectation)
OWN = {
    "own-wrong-boundary": (own_wrong_boundary, ("udp", "tcp"), "reject"),
    # Tolerated by policy (docs/sdp.md): the SDP part is complete.
    "own-unterminated-multipart": (own_unterminated_multipart, ("udp", "tcp"), "lenient"),
    "own-nested-multipart-200": (own_nested_multipart, ("udp", "tcp"), "lenient"),
    "own-sdp-1000-mlines": (own_sdp_1000_mlines, ("udp", "tcp"), "lenient"),
    "own-sdp-garbage": (own_sdp_garbage, ("udp", "tcp"), "reject"),
    "own-billion-laughs": (own_billion_laughs, ("udp", "tcp"), "lenient"),
    "own-deep-xml": (own_deep_xml, ("udp", "tcp"), "lenient"),
    "own-invalid-utf8-metadata": (own_invalid_utf8, ("udp", "tcp"), "lenient"),
    "own-invalid-utf8-header": (own_invalid_utf8_headers, ("udp", "tcp"), "lenient"),
    "own-content-length-larger": (own_cl_larger, ("udp", "tcp"), "reject"),
    # The body is what Content-Length says (RFC 3261 §18.3): a cut multipart
    # may still hold a complete SDP part.
    "own-content-length-smaller": (own_cl_smaller, ("udp", "tcp"), "lenient"),
    "own-zero-length-datagram": (own_zero_length, ("udp",), "ignore"),
    "own-random-65507-datagram": (own_random_datagram, ("udp",), "reject"),
    "own-garbage-tcp-stream": (own_garbage_stream, ("tcp",), "reject"),
    "own-nul-in-request-line": (own_nul_in_request_line, ("udp", "tcp"), "reject"),
    "own-4000-headers": (own_many_headers, ("udp", "tcp"), "lenient"),
    "own-sdp-bad-ports": (own_negative_port_sdp, ("udp", "tcp"), "reject"),
    "own-5000-byte-boundary": (own_huge_boundary, ("udp", "tcp"), "lenient"),
}


class TortureBase(DaemonTestCase):
    TRANSPORT = "udp"
    results: list

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.results = []

    @classmethod
    def tearDownClass(cls):
        print(f"\n--- torture results over {cls.TRANSPORT} (message: answers) ---")
        for name, codes in cls.results:
            print(f"  {name:30s} {', '.join(codes) if codes else 'no answer'}")
        super().tearDownClass()

    def exchange(self, c: SipClient, data: bytes, wait: float) -> list[SipMessage]:
        """Sends data, returns all responses until the first final or timeout."""
        try:
            c.send_raw(data)
        except OSError as e:
            if self.TRANSPORT == "tcp":
                return []  # the daemon closed the connection on us: acceptable
            raise AssertionError(f"send failed: {e}")
        out = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            m = c.recv(max(0.01, deadline - time.monotonic()))
            if m is None:
                if c.transport == "tcp" and c.closed:
                    break
                continue
            if not m.is_response:
                c.answer_ok(m)
                continue
            out.append(m)
            if m.status >= 200:
                break
        return out

    def cleanup_invite(self, c: SipClient, resp: SipMessage):
        """ACK a final to an INVITE; for a 2xx also BYE (no session left behind)."""
        if resp.cseq[1] != "INVITE" or resp.status < 200:
            return
        via = c.via(new_branch()) if resp.status < 300 else (resp.header("via") or c.via(new_branch()))
        target = resp.contact_uri() if resp.status < 300 else c.server_uri()
        target = target or c.server_uri()
        base = [("Max-Forwards", "70"), ("From", resp.header("from")), ("To", resp.header("to")),
                ("Call-ID", resp.header("call-id"))]
        c.send_raw(build_message(f"ACK {target} SIP/2.0",
                                 [("Via", via)] + base + [("CSeq", f"{resp.cseq[0]} ACK")]))
        if resp.status < 300:
            data = build_message(f"BYE {target} SIP/2.0", [("Via", c.via(new_branch()))] + base
                                 + [("CSeq", f"{resp.cseq[0] + 1} BYE")])
            c.send_raw(data)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                m = c.recv(0.5)
                if m is not None and m.is_response and m.cseq[1] == "BYE":
                    break

    def run_one(self, name: str, data: bytes, expectation: str, extra_ok=()):
        d = self.daemon
        rss_before = vm_rss_kb(d.proc.pid)
        try:
            c = d.client(self.TRANSPORT)
        except OSError as e:
            self.fail(self._diag(f"{name}: cannot connect: {e}"))
        with c:
            if self.TRANSPORT == "udp":
                data = retarget(data, "udp", c.local_hostport)
            else:
                data = retarget(data, "tcp", c.local_hostport)
            wait = WAIT_IGNORED if expectation == "ignore" else WAIT_FINAL
            t0 = time.monotonic()
            responses = self.exchange(c, data, wait)
            finals = [r for r in responses if r.status >= 200]
            for r in finals:
                self.cleanup_invite(c, r)
        codes = [str(r.status) for r in responses]
        self.results.append((name, codes))
        # 1. still alive, still answering.
        if not d.alive():
            self.fail(self._diag(f"siprecd died after {name} over {self.TRANSPORT}"))
        ok, desc = options_ok(d, self.TRANSPORT)
        self.assertTrue(ok, self._diag(f"after {name} over {self.TRANSPORT}: {desc}"))
        # 2. memory stays bounded (billion laughs, deep nesting, 1000 m-lines ...).
        rss_after = vm_rss_kb(d.proc.pid)
        self.assertLess(rss_after - rss_before, RSS_LIMIT_KB,
                        self._diag(f"{name}: RSS grew from {rss_before} kB to {rss_after} kB"))
        # 3. the answer fits the expectation.
        for r in finals:
            if expectation in ("reject", "ignore"):
                self.assertTrue(400 <= r.status < 500 or r.status in extra_ok,
                                self._diag(f"{name} over {self.TRANSPORT}: expected 4xx "
                                           f"{'or ' + str(extra_ok) + ' ' if extra_ok else ''}"
                                           f"or no answer, got:\n{describe(r)}"))
            if expectation == "ignore":
                self.fail(self._diag(f"{name}: a response sent to the daemon was answered:\n{describe(r)}"))
        return responses

    def test_rfc4475(self):
        for name in sorted(EXPECT):
            section, expectation, extra = EXPECT[name]
            with self.subTest(message=name, section=section):
                self.run_one(name, load_torture(name), expectation, extra)

    def test_own_siprec(self):
        for name, (builder, transports, expectation) in OWN.items():
            if self.TRANSPORT not in transports:
                continue
            with self.subTest(message=name):
                with self.daemon.client(self.TRANSPORT) as probe:
                    data = builder(probe)
                self.run_one(name, data, expectation)

class TortureUdp(TortureBase):
    TRANSPORT = "udp"


class TortureTcp(TortureBase):
    TRANSPORT = "tcp"

    def test_garbage_then_options_on_new_connection(self):
        with self.daemon.client("tcp") as c:
            try:
                c.send_raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 4000)  # a TLS hello
                c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass
            c.recv(0.5)
        self.assertAlive("garbage on a TCP connection")

    def test_tcp_slowloris_header_does_not_block_others(self):
        # An incomplete message held open must not stop others being served.
        s = socket.create_connection(self.daemon.sip_addr, timeout=2)
        try:
            s.sendall(b"INVITE sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx\r\n")
            self.assertAlive("half a message held open on another connection")
        finally:
            s.close()


del TortureBase  # only the concrete classes are tests

if __name__ == "__main__":
    unittest.main(verbosity=2)
