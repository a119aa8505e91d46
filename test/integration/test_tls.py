"""SIP over TLS (docs/security.md, section "TLS"): a siprecd with a tls: listener, driven by
siprec-src over TLS (sofia's TLS client) and by Python's ssl as a raw TLS client for the
refusals. Certificates are made at test time with the openssl CLI (make_pki, the recipe
docs/security.md shows)."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

from harness import (LOOPBACK, Call, Daemon, DaemonTestCase, SipClient, SipMessage, siprec_body,
                     siprec_headers, wait_until)
from test_siprec_src import Dnsmasq, SrcMixin, dns_query

# How long siprec-src --verify waits for the recording to be published: a bound on a condition
# (the finaliser's turn on a busy machine), not a timing assertion.
VERIFY_WAIT_S = "60"

# ---------------------------------------------------------------------------
# Test PKI

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str, cwd: str):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{p.stderr}")


def make_ca(d: str, name: str, cn: str):
    openssl("req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-subj", f"/CN={cn}", "-days", "2", cwd=d)


def make_cert(d: str, name: str, cn: str, ca: str, days: str = "2", san: str | None = None):
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    ext = []
    if san:
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\n")
        ext = ["-extfile", f"{name}.ext"]
    # -days -1: notAfter a day before notBefore, i.e. already expired.
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", days, *ext, cwd=d)


def make_pki(d: str):
    make_ca(d, "ca", "siprec test CA")
    make_ca(d, "rogue-ca", "rogue CA")
    make_cert(d, "server", "recorder.test", "ca", san="DNS:recorder.test,DNS:localhost,IP:127.0.0.1")
    make_cert(d, "server2", "recorder-2.test", "ca", san="DNS:recorder-2.test,DNS:localhost,IP:127.0.0.1")
    make_cert(d, "client", "src1.allowed.test", "ca", san="DNS:src1.allowed.test")
    make_cert(d, "intruder", "intruder.test", "ca")
    make_cert(d, "rogue", "src1.allowed.test", "rogue-ca")
    make_cert(d, "expired", "src1.allowed.test", "ca", days="-1")


class TlsSipClient(SipClient):
    """SipClient over a TLS connection (Python's ssl): sips: URIs, Via SIP/2.0/TLS."""

    def __init__(self, server: tuple[str, int], ctx: ssl.SSLContext, timeout: float = 5.0):
        raw = socket.create_connection(server, timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.transport = "tcp"  # stream framing in SipClient
        self.server = server
        self.local = self.sock.getsockname()
        self._buf = b""
        self._queue: list[SipMessage] = []
        self.closed = False

    @property
    def via_transport(self) -> str:
        return "TLS"

    def server_uri(self, user: str = "srs") -> str:
        return f"sips:{user}@{self.server[0]}:{self.server[1]}"

    def contact(self, params: str = ';+sip.src') -> str:
        return f"<sips:src@{self.local_hostport}>{params}"


def client_context(pki: str, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, f"{cert}.pem"), os.path.join(pki, f"{cert}.key"))
    return ctx


class TlsDaemonCase(SrcMixin, DaemonTestCase):
    """One siprecd per class listening on udp: and tls: (same port number), a fresh PKI."""

    TLS: dict = {}
    CONFIG: dict = {}  # more config sections ({"sip": {...}, "media": {...}})

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="siprec-tls-it-")
        cls.pki = os.path.join(cls.tmp, "pki")
        os.makedirs(cls.pki)
        make_pki(cls.pki)
        # The gateway reads its certificate from these paths (replaced for the reload test).
        shutil.copy(os.path.join(cls.pki, "server.pem"), os.path.join(cls.pki, "live.pem"))
        shutil.copy(os.path.join(cls.pki, "server.key"), os.path.join(cls.pki, "live.key"))
        tls = {"cert_file": os.path.join(cls.pki, "live.pem"),
               "key_file": os.path.join(cls.pki, "live.key")}
        for k, v in cls.TLS.items():
            tls[k] = v.format(pki=cls.pki) if isinstance(v, str) else v
        config = {"node": {"name": "gw-tls"}, "tls": tls, **cls.CONFIG}
        cls.daemon = Daemon(config=config, transports=("udp", "tls"))
        try:
            cls.daemon.start()
        except BaseException:
            cls.daemon.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def daemons(self):
        return [self.daemon]

    def target(self) -> str:
        return f"sips:{LOOPBACK}:{self.daemon.sip_port}"

    def pki_file(self, name: str) -> str:
        return os.path.join(self.pki, name)

    def src_call(self, *args: str, duration: str = "1.5", target: str | None = None):
        run = self.run_src(target or self.target(), "--tls-ca", self.pki_file("ca.pem"), "--duration", duration,
                           "--verify", self.daemon.recordings_dir, "--verify-timeout", VERIFY_WAIT_S, *args)
        self.assertVerified(run, 1)
        rec = run.records[0]
        self.assertEqual(rec["target"], f"tls:{LOOPBACK}:{self.daemon.sip_port}")
        path, doc = self.only_recording(self.daemon.recordings_dir, rec, run)
        self.assertTrue(any(" over tls," in e["what"] for e in doc["events"]), doc["events"])
        self.assertSentAudio(path, doc, rec, "tls call")
        return run, doc

    def tls_client(self, cert: str | None = None, **ctx_args) -> TlsSipClient:
        ctx = client_context(self.pki, cert)
        for k, v in ctx_args.items():
            setattr(ctx, k, v)
        return TlsSipClient(self.daemon.sip_addr, ctx)

    def metric(self, name: str) -> float:
        return self.daemon.metrics().get(name)

    def assertHandshakeRefused(self, cert: str | None, reason: str):
        """The gateway ends the handshake: no SIP answer ever, one log line naming the
        peer and the reason, the failure metric counts it."""
        before = self.metric("sgw_sip_tls_handshake_failures_total")
        ctx = client_context(self.pki, cert)
        raw = socket.create_connection(self.daemon.sip_addr, timeout=5)
        local = raw.getsockname()
        answer = None
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            # TLS 1.3: the client finishes its side before the server has checked the
            # client certificate; the refusal arrives as an alert on the first read.
            c = TlsSipClient.__new__(TlsSipClient)
            c.sock, c.transport, c.server, c.local = s, "tcp", self.daemon.sip_addr, local
            c._buf, c._queue, c.closed = b"", [], False
            data, _ = c.request("OPTIONS")
            c.send_raw(data)
            answer = c.recv(5)
        except (ssl.SSLError, OSError):
            pass
        finally:
            raw.close()
        self.assertIsNone(answer, f"refused client got a SIP answer: {answer}")
        peer = f"{local[0]}:{local[1]}"
        line = wait_until(lambda: [ln for ln in self.daemon.stderr_text().splitlines()
                                   if f"TLS handshake with {peer} " in ln], timeout=5)
        self.assertTrue(line, self._diag(f"no handshake failure line for {peer}"))
        self.assertEqual(len(line), 1, line)
        self.assertIn(reason, line[0])
        self.assertTrue(wait_until(lambda: self.metric("sgw_sip_tls_handshake_failures_total") == before + 1,
                                   timeout=5), "handshake failure metric")


class TlsCallTest(TlsDaemonCase):
    """Server authentication only: any client may connect."""

    def test_tls_call_is_recorded_with_its_tones(self):
        self.src_call()

    def test_contact_is_sips_and_tls13_is_preferred(self):
        """RFC 3261 §12.1.1: a dialog set up with a sips: Request-URI gets a sips: Contact, so
        the SRC's in-dialog requests (BYE, re-INVITE) come back over TLS; they do."""
        with self.tls_client() as c:
            self.assertEqual(c.sock.version(), "TLSv1.3")
            call = Call(c)
            body, ctype = siprec_body()
            resp = call.invite(body, ctype, headers=siprec_headers())
            self.assertStatus(resp, 200, "INVITE over TLS")
            self.assertTrue(resp.header("Via").startswith("SIP/2.0/TLS "), resp.header("Via"))
            self.assertEqual(resp.contact_uri(), f"sips:srs@{LOOPBACK}:{self.daemon.sip_port}")
            self.assertStatus(call.bye(), 200, "BYE over TLS")

    def test_tls12_works_and_older_is_refused(self):
        with self.tls_client(maximum_version=ssl.TLSVersion.TLSv1_2) as c:
            self.assertEqual(c.sock.version(), "TLSv1.2")
            resp = c.options()
            self.assertEqual(resp.status if resp else None, 200, resp)
        ctx = client_context(self.pki)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with socket.create_connection(self.daemon.sip_addr, timeout=5) as raw:
            with self.assertRaises((ssl.SSLError, OSError)):
                ctx.wrap_socket(raw, server_hostname="localhost")


class MutualTlsTest(TlsDaemonCase):
    TLS = {"verify_client": True, "ca_file": "{pki}/ca.pem", "allowed_subjects": ["*.allowed.test"]}

    def test_allowed_client_certificate_records(self):
        self.src_call("--tls-cert", self.pki_file("client.pem"), "--tls-key", self.pki_file("client.key"))

    def test_wrong_subject_gets_403(self):
        before = self.metric("sgw_sip_tls_forbidden_total")
        with self.tls_client("intruder") as c:
            resp = c.options()
            self.assertEqual(resp.status if resp else None, 403, self._diag(f"OPTIONS: {resp}"))
            data, _ = c.request("INVITE", body="v=0\r\n", content_type="application/sdp")
            c.send_raw(data)
            resp = c.recv(5)
            self.assertEqual(resp.status if resp else None, 403, self._diag(f"INVITE: {resp}"))
        self.assertEqual(self.metric("sgw_sip_tls_forbidden_total"), before + 2)
        self.assertEqual(self.metric("sgw_active_sessions"), self.base_active)
        self.assertIn("(subject 'intruder.test') is not in tls.allowed_subjects", self.daemon.stderr_text())

    def test_unknown_ca_is_refused(self):
        self.assertHandshakeRefused("rogue", "client certificate: unable to get local issuer certificate")

    def test_expired_certificate_is_refused(self):
        self.assertHandshakeRefused("expired", "client certificate: certificate has expired")

    def test_no_client_certificate_is_refused(self):
        self.assertHandshakeRefused(None, "peer did not return a certificate")


class AllowedSourcesTlsTest(TlsDaemonCase):
    """sip.allowed_sources on a tls: listener: a connection from an address outside the list
    is closed right after accept, before the handshake (docs/security.md "TLS"); allowed
    addresses call as usual. Loopback has all of 127/8, so the refused client binds 127.0.0.7."""

    CONFIG = {"sip": {"allowed_sources": [f"{LOOPBACK}/32"]}}
    REFUSED = "127.0.0.7"

    def limit_hits(self) -> float:
        return self.daemon.metrics().get("sgw_limits_hit_total", cap="allowed_sources")

    def test_allowed_source_records_over_tls(self):
        self.src_call()

    def test_source_outside_the_list_is_closed_before_the_handshake(self):
        hits = self.limit_hits()
        handshakes = self.metric("sgw_sip_tls_connections_total")
        failures = self.metric("sgw_sip_tls_handshake_failures_total")
        for _ in range(3):
            raw = socket.create_connection(self.daemon.sip_addr, timeout=5, source_address=(self.REFUSED, 0))
            try:
                # The gateway closes the socket without reading: the ClientHello gets EOF or RST.
                with self.assertRaises((ssl.SSLError, OSError)):
                    client_context(self.pki).wrap_socket(raw, server_hostname="localhost")
            finally:
                raw.close()
        self.assertTrue(wait_until(lambda: self.limit_hits() == hits + 3, timeout=5),
                        self._diag(f"sgw_limits_hit_total{{cap=allowed_sources}}: {self.limit_hits()}, "
                                   f"expected {hits + 3}"))
        # Refused before the handshake: none completed, none counted as a failed handshake.
        self.assertEqual(self.metric("sgw_sip_tls_connections_total"), handshakes)
        self.assertEqual(self.metric("sgw_sip_tls_handshake_failures_total"), failures)
        lines = [ln for ln in self.daemon.stderr_text().splitlines()
                 if f"limit allowed_sources hit by {self.REFUSED}: TLS connection" in ln]
        self.assertEqual(len(lines), 1, lines)  # once per source and minute
        self.assertIn("closed before the handshake", lines[0])
        # The allowed address is still served on the same listener.
        with self.tls_client() as c:
            resp = c.options()
            self.assertEqual(resp.status if resp else None, 200, resp)


class TlsSrtpSrvTest(TlsDaemonCase):
    """The issue's done-when: a TLS+SRTP SIPREC call from siprec-src to sips:recorder.test, found
    by its _sips._tcp SRV record (dnsmasq on loopback), recorded with the right audio (each
    leg's tone on its participant's channel) and metadata (participants, roles, conversation
    id), with media.srtp: require so nothing unencrypted could have been recorded."""

    CONFIG = {"media": {"srtp": "require"}}
    DOMAIN = "recorder.test"  # in the server certificate's subjectAltName
    SUITE = "AES_256_CM_HMAC_SHA1_80"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # RFC 3263 §4.2 / RFC 5922: the domain's SRV names the gateway; its target is the
        # certificate's name, resolved by the same server.
        cls.dns = Dnsmasq([f"--srv-host=_sips._tcp.{cls.DOMAIN},{cls.DOMAIN},{cls.daemon.sip_port},10,100",
                           f"--host-record={cls.DOMAIN},{LOOPBACK}"])
        cls.addClassCleanup(cls.dns.stop)  # runs after tearDownClass, also when setUpClass fails
        try:
            cls.dns.start(f"_sips._tcp.{cls.DOMAIN}")
        except BaseException:
            cls.tearDownClass()  # the daemon
            raise

    def test_srtp_call_to_a_sips_srv_domain_is_recorded(self):
        self.assertEqual(dns_query(self.dns.port, f"_sips._tcp.{self.DOMAIN}", 33),
                         [(10, 100, self.daemon.sip_port, self.DOMAIN)])
        run, doc = self.src_call("--dns-server", f"{LOOPBACK}:{self.dns.port}", "--srtp", self.SUITE,
                                 target=f"sips:{self.DOMAIN}")
        # siprec-src looked the SRV up (not an A record of the URI's host with a default port).
        self.assertIn(f"_sips._tcp.{self.DOMAIN}", self.dns.log())
        rec = run.records[0]
        # Metadata: the SRC's participants, with their roles and channels, and its conversation.
        self.assertEqual(doc["conversation_id"], rec["conversation_id"])
        self.assertEqual({(p["aor"], p["role"], p["channel"]) for p in doc["participants"]},
                         {(rec["caller"]["aor"], "caller", 0), (rec["agent"]["aor"], "agent", 1)},
                         doc["participants"])
        # Media: both streams decrypted with the offered suite (src_call checked that every
        # packet sent is recorded with its tone on its participant's channel).
        self.assertEqual([s["srtp"] for s in doc["streams"]], [self.SUITE, self.SUITE], doc["streams"])
        self.assertEqual([(i["srtp_auth_failures"], i["srtp_replays"]) for i in doc["integrity"]["streams"]],
                         [(0, 0), (0, 0)], doc["integrity"])


class TlsReloadTest(TlsDaemonCase):

    def test_sighup_reload_serves_the_new_certificate_while_a_call_continues(self):
        with self.tls_client() as c:
            self.assertEqual(c.sock.getpeercert()["subject"], ((("commonName", "recorder.test"),),))
        duration = "5"
        argv_extra = ("--tls-ca", self.pki_file("ca.pem"), "--duration", duration,
                      "--verify", self.daemon.recordings_dir, "--verify-timeout", VERIFY_WAIT_S)
        result = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "run", self.run_src(self.target(), *argv_extra)))
        t.start()
        try:
            established = wait_until(lambda: "established (ACK)" in self.daemon.stderr_text(), timeout=30)
            self.assertTrue(established, self._diag("the call was not established"))
            shutil.copy(self.pki_file("server2.pem"), self.pki_file("live.pem"))
            shutil.copy(self.pki_file("server2.key"), self.pki_file("live.key"))
            self.daemon.send_signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: "TLS certificate files reloaded" in self.daemon.stderr_text(),
                                       timeout=15), self._diag("no reload line"))
            with self.tls_client() as c:
                self.assertEqual(c.sock.getpeercert()["subject"], ((("commonName", "recorder-2.test"),),))
                resp = c.options()
                self.assertEqual(resp.status if resp else None, 200, resp)
        finally:
            t.join(60)
        run = result.get("run")
        self.assertIsNotNone(run, "siprec-src did not finish")
        self.assertVerified(run, 1)
        path, doc = self.only_recording(self.daemon.recordings_dir, run.records[0], run)
        self.assertSentAudio(path, doc, run.records[0], "call across the reload")

    def test_bad_reload_keeps_the_old_certificate(self):
        with open(self.pki_file("live.key"), "w") as f:
            f.write("not a key\n")
        try:
            self.daemon.send_signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: "TLS certificate not reloaded" in self.daemon.stderr_text(),
                                       timeout=5), self._diag("no reload error line"))
            line = [ln for ln in self.daemon.stderr_text().splitlines() if "TLS certificate not reloaded" in ln][-1]
            self.assertIn("tls.", line)
            with self.tls_client() as c:
                resp = c.options()
                self.assertEqual(resp.status if resp else None, 200, resp)
        finally:
            shutil.copy(self.pki_file("server.key"), self.pki_file("live.key"))
            shutil.copy(self.pki_file("server.pem"), self.pki_file("live.pem"))


if __name__ == "__main__":
    unittest.main()
