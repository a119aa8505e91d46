"""Web identity credentials against radosgw's own STS, not a stand-in (docs/s3.md
"Credentials" and "radosgw's STS"). siprecd has no static key: AWS_ROLE_ARN +
AWS_WEB_IDENTITY_TOKEN_FILE make it call AssumeRoleWithWebIdentity on radosgw
(Ceph 16): a second radosgw on the fixture's cluster with STS enabled
(`scripts/s3-server sts`; the first one stays without, see docs/s3.md), which
checks the token the way an operator's radosgw checks an IdP's token:

  * an OpenID Connect issuer served here on a loopback port
    (/.well-known/openid-configuration and its jwks_uri, one RSA key with the
    x5c certificate that Ceph 16 requires; radosgw fetches both on every call);
  * that issuer registered with radosgw's IAM API (CreateOpenIDConnectProvider:
    URL, client id, the certificate's SHA-1 thumbprint), and a role whose trust
    policy admits that provider's subject and whose policy allows S3 on the
    test buckets (CreateRole, PutRolePolicy) - what an operator does with
    `aws iam` against radosgw;
  * RS256 JWTs signed here (python3-cryptography).

A recording is delivered to an Object Lock bucket with the role's temporary
credentials (read back with a session of the same role); a token signed by
another key is refused by radosgw, the gateway says so, and the recording stays
queued until a valid token is in the file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

import s3lite
from harness import wait_until
from test_aws_credentials import CredentialsCase, ProviderServer
from test_s3_delivery import S3_SERVER, S3Server, sha256_file

CLIENT_ID = "sgw-recorder"                             # the token's aud, registered with the provider
SUBJECT = "system:serviceaccount:recording:siprecd"    # the token's sub, required by the trust policy
SESSION = "gw-node-1"
BUCKET_PREFIX = "sgw-sts-"                             # the role may use these buckets only


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def form(params: dict) -> bytes:
    """application/x-www-form-urlencoded with %20 for spaces (as the AWS SDKs send it)."""
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote).encode()


def compact(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcIssuer:
    """An OpenID Connect issuer at http://127.0.0.1:PORT. Ceph 16 fetches
    ISSUER/.well-known/openid-configuration, then its jwks_uri, and reads the
    first key's x5c certificate (a JWKS with only n/e is refused: "x5c not
    present"); the certificate's SHA-1 must be a registered thumbprint."""

    KID = "sgw-oidc-1"

    def __init__(self):
        self.key = new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siprec-gateway test issuer")])
        now = datetime.now(timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
                     .sign(self.key, hashes.SHA256()))
        self.thumbprint = self.cert.fingerprint(hashes.SHA1()).hex()

        def handle(h, method):
            if method != "GET":
                return h.reply(405, "")
            if h.path == "/.well-known/openid-configuration":
                return h.reply(200, json.dumps(self.configuration()), "application/json")
            if h.path == "/jwks":
                self.http.count("fetches")
                return h.reply(200, json.dumps(self.jwks()), "application/json")
            return h.reply(404, "")

        self.http = ProviderServer(handle)
        self.url = self.http.url                          # the token's iss
        self.host = self.url.removeprefix("http://")      # radosgw names the provider by the URL without scheme

    @property
    def jwks_fetches(self) -> int:
        return self.http.fetches

    def configuration(self) -> dict:
        return {"issuer": self.url, "jwks_uri": self.url + "/jwks", "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}

    def jwks(self) -> dict:
        pub = self.key.public_key().public_numbers()
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.KID,
                          "n": b64url(pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")),
                          "e": b64url(pub.e.to_bytes(3, "big")),
                          "x5c": [base64.b64encode(der).decode()],
                          "x5t": b64url(self.cert.fingerprint(hashes.SHA1()))}]}

    def token(self, key: rsa.RSAPrivateKey | None = None, lifetime_s: int = 3600) -> str:
        """A service-account style ID token, RS256, signed with the issuer's key (or `key`)."""
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": self.KID}
        claims = {"iss": self.url, "sub": SUBJECT, "aud": CLIENT_ID, "azp": CLIENT_ID,
                  "iat": now - 5, "nbf": now - 5, "exp": now + lifetime_s}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        sig = (key or self.key).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(sig)

    def close(self):
        self.http.close()


def sts_endpoint(server: S3Server) -> str:
    """A radosgw with STS enabled on the same cluster as `server`: $S3_STS_ENDPOINT, else the
    second radosgw that `scripts/s3-server sts` starts (once) on the fixture's cluster."""
    if os.environ.get("S3_STS_ENDPOINT"):
        return os.environ["S3_STS_ENDPOINT"]
    if not server.dir:
        raise AssertionError("S3_ENDPOINT is given but not S3_STS_ENDPOINT: this test needs radosgw's STS")
    r = subprocess.run([S3_SERVER, "sts", server.dir], capture_output=True, text=True, timeout=240)
    if r.returncode != 0:
        raise AssertionError(f"scripts/s3-server sts {server.dir} failed:\n{r.stdout}\n{r.stderr}")
    return S3Server.parse_env(r.stdout)["S3_STS_ENDPOINT"]


class StsCredentials:
    def __init__(self, xml_text: str):
        root = ET.fromstring(xml_text)
        find = lambda tag: next((e.text or "" for e in root.iter() if e.tag.endswith("}" + tag) or e.tag == tag), "")
        self.access_key, self.secret_key = find("AccessKeyId"), find("SecretAccessKey")
        self.session_token, self.expiration = find("SessionToken"), find("Expiration")


class RadosgwWebIdentityTest(CredentialsCase):
    """One OIDC provider and one role for the class; a bucket and a gateway per test."""

    endpoint: str  # the STS radosgw: STS, IAM and S3 for the gateway
    issuer: OidcIssuer
    role_arn: str

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.endpoint = sts_endpoint(cls.server)
        cls.issuer = OidcIssuer()
        cls.addClassCleanup(cls.issuer.close)
        cls.iam_client = s3lite.S3(cls.endpoint, cls.server.access_key, cls.server.secret_key,
                                   cls.server.region, service="iam")
        provider = cls.iam("CreateOpenIDConnectProvider", {
            "Url": cls.issuer.url, "ClientIDList.member.1": CLIENT_ID,
            "ThumbprintList.member.1": cls.issuer.thumbprint})
        provider_arn = cls.text(provider, "OpenIDConnectProviderArn")
        assert provider_arn == f"arn:aws:iam:::oidc-provider/{cls.issuer.host}", provider
        cls.addClassCleanup(cls.iam, "DeleteOpenIDConnectProvider", {"OpenIDConnectProviderArn": provider_arn})
        role = "sgw-recorder-" + uuid.uuid4().hex[:8]
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": [provider_arn]},
            "Action": ["sts:AssumeRoleWithWebIdentity"],
            "Condition": {"StringEquals": {f"{cls.issuer.host}:sub": SUBJECT}}}]}
        created = cls.iam("CreateRole", {"RoleName": role, "Path": "/",
                                         "AssumeRolePolicyDocument": compact(trust)})
        cls.role_arn = cls.text(created, "Arn")
        cls.addClassCleanup(cls.iam, "DeleteRole", {"RoleName": role})
        allow = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["s3:*"],
            "Resource": [f"arn:aws:s3:::{BUCKET_PREFIX}*", f"arn:aws:s3:::{BUCKET_PREFIX}*/*"]}]}
        cls.iam("PutRolePolicy", {"RoleName": role, "PolicyName": "deliver-recordings",
                                  "PolicyDocument": compact(allow)})
        cls.addClassCleanup(cls.iam, "DeleteRolePolicy", {"RoleName": role, "PolicyName": "deliver-recordings"})

    @classmethod
    def iam(cls, action: str, params: dict) -> str:
        """One IAM API call to radosgw (form POST, SigV4 with the test user's keys)."""
        body = form({"Action": action, "Version": "2010-05-08", **params})
        status, _, data = cls.iam_client.request(
            "POST", "", headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, body=body)
        if status != 200:
            raise AssertionError(f"IAM {action}: HTTP {status}: {data.decode(errors='replace')}")
        return data.decode()

    @staticmethod
    def text(xml_text: str, tag: str) -> str:
        m = re.search(f"<{tag}>([^<]*)</{tag}>", xml_text)
        if not m:
            raise AssertionError(f"no <{tag}> in {xml_text}")
        return m.group(1)

    def assume(self, token: str, session: str) -> tuple[int, str]:
        """AssumeRoleWithWebIdentity as siprecd sends it: unsigned form POST to the S3 endpoint."""
        body = form({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": self.role_arn,
                     "RoleSessionName": session, "WebIdentityToken": token})
        req = urllib.request.Request(self.endpoint + "/", data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def role_client(self) -> s3lite.S3:
        """An S3 client with a fresh session of the role (our own token, our own call)."""
        status, body = self.assume(self.issuer.token(), "sgw-test-reader")
        self.assertEqual(status, 200, body)
        c = StsCredentials(body)
        return s3lite.S3(self.endpoint, c.access_key, c.secret_key, self.server.region,
                         session_token=c.session_token)

    def bucket(self) -> str:
        name = BUCKET_PREFIX + uuid.uuid4().hex[:16]
        self.server.client.create_bucket(name, object_lock=True)
        return name

    def start_gateway(self, bucket: str, token: str):
        token_file = os.path.join(self.tmp_home(), "token")
        with open(token_file, "w") as f:
            f.write(token)
        env = {"AWS_ROLE_ARN": self.role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
               "AWS_ROLE_SESSION_NAME": SESSION, "AWS_ENDPOINT_URL_STS": self.endpoint,
               "AWS_EC2_METADATA_DISABLED": "true"}
        with self.aws_env(env):  # no AWS_ACCESS_KEY_ID, an empty HOME: no static key anywhere
            d = self.start_daemon({"s3": dict(bucket=bucket, endpoint=self.endpoint,
                                              region=self.server.region, path_style=True,
                                              retention_mode="COMPLIANCE", retention_days=1, max_backoff_s=1)})
        return d, token_file

    def assert_delivered_with_role(self, bucket: str, entries: list[dict]):
        """Every object of the entries, read with a session of the role: one version,
        written by the web identity, the local file's bytes, the gateway's metadata,
        locked in COMPLIANCE mode."""
        role_s3 = self.role_client()
        versions = role_s3.versions(bucket)
        want = {o["key"] for e in entries for o in e["objects"]}
        self.assertEqual({v["key"] for v in versions}, want, versions)
        self.assertEqual(len(versions), len(want), versions)
        # radosgw itself says who wrote them: not the static test user (sgw-test) but the web
        # identity, which radosgw names by the token's sub in its "oidc" namespace.
        for v in versions:
            self.assertEqual(v["owner"], f"$oidc${SUBJECT}", v)
        for e in entries:
            for o in e["objects"]:
                h = role_s3.head(bucket, o["key"])
                self.assertEqual(h["x-amz-meta-recording-id"], e["recording_id"], h)
                self.assertEqual(h["x-amz-object-lock-mode"], "COMPLIANCE", h)
                until = datetime.strptime(h["x-amz-object-lock-retain-until-date"][:19], "%Y-%m-%dT%H:%M:%S")
                self.assertGreater(until.replace(tzinfo=timezone.utc), datetime.now(timezone.utc) + timedelta(hours=23))
                body = role_s3.get(bucket, o["key"])
                self.assertEqual(hashlib.sha256(body).hexdigest(), sha256_file(o["path"]), o["key"])

    def test_recording_delivered_with_the_roles_temporary_credentials(self):
        bucket = self.bucket()
        token = self.issuer.token()
        d, _ = self.start_gateway(bucket, token)
        self.calls(d, 1, 1.0)
        entries = self.wait_states(d, 1, "delivered", 40)
        self.assertEqual(len(entries[0]["objects"]), 2, entries)
        self.assert_delivered_with_role(bucket, entries)
        log = d.stderr_text()
        self.assertIn(f"S3 credentials from web identity: role {self.role_arn} via STS {self.endpoint}", log)
        m = re.search(r"web identity credentials \(access key id (\S+)\) valid until (\S+)", log)
        self.assertIsNotNone(m, d.diagnostics())
        self.assertNotEqual(m.group(1), self.server.access_key)
        # radosgw's default DurationSeconds is one hour.
        until = datetime.strptime(m.group(2)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        self.assertGreater(until, datetime.now(timezone.utc) + timedelta(minutes=50))
        self.assertNotIn("S3 credentials from the", log)  # no static source was used
        self.assertGreaterEqual(self.issuer.jwks_fetches, 1)  # radosgw checked the signature
        m = d.metrics()
        self.assertEqual(m.get("sgw_deliveries_delivered_total"), 1)
        self.assertEqual(m.get("sgw_delivery_permanent_failures_total"), 0)
        d.stop()
        log = d.stderr_text()
        for secret in (token, self.server.secret_key):
            self.assertNotIn(secret, log, "a secret is in the gateway's log")

    def test_token_from_another_key_is_refused_and_the_recording_waits(self):
        bucket = self.bucket()
        forged = self.issuer.token(key=new_key())
        # radosgw itself refuses it (the signature does not verify with the registered certificate).
        status, body = self.assume(forged, "sgw-test-forged")
        self.assertEqual(status, 403, body)
        self.assertIn("AccessDenied", body)

        d, token_file = self.start_gateway(bucket, forged)
        self.calls(d, 1, 1.0)
        refused = (f"web identity credentials: STS AssumeRoleWithWebIdentity: AccessDenied "
                   f"(HTTP 403 from {self.endpoint}, role {self.role_arn})")
        got: list[dict] = []

        def retried_at_least_twice():
            got[:] = self.s3_entries(d)
            return len(got) == 1 and got[0]["attempts"] >= 2 and refused in d.stderr_text()
        self.assertTrue(wait_until(retried_at_least_twice, 40, 0.5), json.dumps(got) + "\n" + d.diagnostics())
        [e] = got
        self.assertNotIn(e["state"], ("failed", "delivered"), e)  # retried, never given up
        self.assertEqual(e["last_error_code"], "Client.Credentials", e)
        self.assertIn("AccessDenied", e["last_error"])
        for o in e["objects"]:
            self.assertTrue(os.path.exists(o["path"]), f"local copy gone: {o['path']}")
        m = d.metrics()
        self.assertGreaterEqual(m.get("sgw_delivery_attempt_failures_total"), 2)
        self.assertEqual(m.get("sgw_delivery_permanent_failures_total"), 0)
        self.assertEqual(m.get("sgw_deliveries_pending"), 1)
        self.assertEqual(self.server.client.versions(bucket), [])
        self.assertNotIn(forged, d.stderr_text())

        # The token file is rotated (as the kubelet does): the next attempt reads it, and
        # the recording that waited is delivered.
        with open(token_file + ".new", "w") as f:
            f.write(self.issuer.token())
        os.replace(token_file + ".new", token_file)
        entries = self.wait_states(d, 1, "delivered", 40)
        self.assert_delivered_with_role(bucket, entries)
        self.assertIn("web identity credentials (access key id ", d.stderr_text())
        self.assertEqual(d.metrics().get("sgw_deliveries_pending"), 0)


if __name__ == "__main__":
    unittest.main()
