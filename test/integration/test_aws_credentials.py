"""AWS credential providers end to end (docs/s3.md "Credentials"): siprecd gets
its S3 credentials the way it does on AWS - from EC2 instance metadata (IMDSv2),
from the ECS/EKS container endpoint, or from STS AssumeRoleWithWebIdentity -
each played by a local server that speaks that provider's protocol strictly, and
delivers recordings with them to the real radosgw of the s3_server_start
fixture. Each server hands out the radosgw test user's keys with a short
Expiration, so the gateway must fetch again mid-run, while deliveries go on.

radosgw's static test user has no session token, so the providers hand out an
empty Token here; that a session token is sent and signed is shown by
test/storage/aws_credentials_test.cc (S3RequestCarriesTheSignedSessionToken)
and the SigV4 suite's post-sts-header-before vector."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import LOOPBACK, Daemon, wait_until
from test_s3_delivery import S3Case

LIFETIME_S = 6  # Expiration handed out: the gateway refreshes at half of it, and must after it


def expiration(lifetime_s: int = LIFETIME_S) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=lifetime_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProviderServer:
    """A credential endpoint on a free loopback port. `handle(handler, method)`
    answers one request; counters say what it saw."""

    def __init__(self, handle):
        self.fetches = 0       # credential documents handed out
        self.rejected = 0      # requests refused for a missing/wrong token
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status: int, body: str, ctype: str = "text/plain"):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> str:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n).decode() if n else ""

            def do_GET(self):
                handle(self, "GET")

            def do_PUT(self):
                handle(self, "PUT")

            def do_POST(self):
                handle(self, "POST")

        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, attr: str):
        with self.lock:
            setattr(self, attr, getattr(self, attr) + 1)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class CredentialsCase(S3Case):
    """One gateway whose S3 credentials come only from the environment given."""

    def creds_json(self) -> dict:
        return {"AccessKeyId": self.server.access_key, "SecretAccessKey": self.server.secret_key,
                "Token": "", "Expiration": expiration()}

    @contextlib.contextmanager
    def aws_env(self, env: dict):
        """The daemon started inside sees only these AWS_* variables and an empty HOME."""
        names = [k for k in os.environ if k.startswith("AWS_") or k == "HOME"]
        saved = {k: os.environ.pop(k) for k in names}
        os.environ.update(env)
        os.environ["HOME"] = self.tmp_home()  # no ~/.aws/credentials
        try:
            yield
        finally:
            for k in [k for k in os.environ if k.startswith("AWS_") or k == "HOME"]:
                del os.environ[k]
            os.environ.update(saved)

    def run_gateway(self, provider: ProviderServer, env: dict, secrets_):
        bucket = self.new_bucket(lock=True)
        with self.aws_env(env):
            d = self.start_daemon({"s3": dict(bucket=bucket, endpoint=self.server.endpoint,
                                              region=self.server.region, path_style=True,
                                              retention_mode="COMPLIANCE", retention_days=1,
                                              max_backoff_s=1)})
        self.calls(d, 1, 1.0)
        self.wait_states(d, 1, "delivered", 30)
        t0 = time.monotonic()
        first = provider.fetches
        self.assertGreaterEqual(first, 1, d.diagnostics())
        # The credentials handed out have expired by now: the next delivery
        # must fetch new ones (the refresh at half-life may already have).
        wait_until(lambda: time.monotonic() - t0 > LIFETIME_S + 1, LIFETIME_S + 5, 0.2)
        self.calls(d, 1, 1.0)
        entries = self.wait_states(d, 2, "delivered", 30)
        self.assertGreater(provider.fetches, first, "no credential refresh during the run\n" + d.diagnostics())
        self.assertEqual(provider.rejected, 0, "the gateway's requests were refused by the provider\n"
                         + d.diagnostics())
        self.assert_delivered_once(bucket, entries)
        d.stop()
        log = d.stderr_text()
        for s in list(secrets_) + [self.server.secret_key]:
            self.assertNotIn(s, log, "a secret is in the gateway's log")
        return d

    def tmp_home(self) -> str:
        p = tempfile.mkdtemp(prefix="sgw-aws-home-")
        self.addCleanup(shutil.rmtree, p, True)
        return p


class InstanceProfileTest(CredentialsCase):
    """EC2 IMDSv2: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds,
    then GETs carrying X-aws-ec2-metadata-token; a GET without a valid token is 401."""

    def test_imdsv2_credentials_deliver_and_refresh(self):
        tokens: dict[str, float] = {}
        role = "sgw-recorder-role"

        def handle(h, method):
            path = h.path
            if method == "PUT" and path == "/latest/api/token":
                ttl = h.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
                if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    return h.reply(400, "missing or invalid X-aws-ec2-metadata-token-ttl-seconds")
                if h.headers.get("X-Forwarded-For"):
                    return h.reply(403, "forwarded")
                tok = secrets.token_urlsafe(24)
                tokens[tok] = time.monotonic() + int(ttl)
                return h.reply(200, tok)
            if method != "GET":
                return h.reply(405, "")
            tok = h.headers.get("X-aws-ec2-metadata-token", "")
            if tok not in tokens or tokens[tok] < time.monotonic():
                self.provider.count("rejected")
                return h.reply(401, "")
            if path == "/latest/meta-data/iam/security-credentials/":
                return h.reply(200, role)
            if path == f"/latest/meta-data/iam/security-credentials/{role}":
                self.provider.count("fetches")
                doc = dict(Code="Success", LastUpdated=expiration(0), Type="AWS-HMAC", **self.creds_json())
                return h.reply(200, json.dumps(doc), "text/plain")
            return h.reply(404, "")

        self.provider = ProviderServer(handle)
        self.addCleanup(self.provider.close)
        # The server is strict: IMDSv1 (a GET without a token) is refused.
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.provider.url + "/latest/meta-data/iam/security-credentials/", timeout=5)
        self.assertEqual(e.exception.code, 401)
        self.provider.rejected = 0
        self.run_gateway(self.provider, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": self.provider.url}, tokens)


class ContainerTest(CredentialsCase):
    """ECS/EKS: AWS_CONTAINER_CREDENTIALS_FULL_URI with the Authorization token from
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, which is rotated mid-run (re-read)."""

    def test_container_endpoint_with_rotated_token_file(self):
        state = {"token": "first-" + secrets.token_hex(8)}
        seen_tokens = [state["token"]]

        def handle(h, method):
            if method != "GET" or h.path != "/v1/credentials":
                return h.reply(404, "")
            if h.headers.get("Authorization") != state["token"]:
                self.provider.count("rejected")
                return h.reply(401, json.dumps({"code": "unauthorized"}), "application/json")
            self.provider.count("fetches")
            # Rotate after the first fetch: the next one must present the new token.
            new = "rotated-" + secrets.token_hex(8)
            with open(token_file, "w") as f:
                f.write(new + "\n")
            state["token"] = new
            seen_tokens.append(new)
            return h.reply(200, json.dumps(self.creds_json()), "application/json")

        self.provider = ProviderServer(handle)
        self.addCleanup(self.provider.close)
        token_file = os.path.join(self.tmp_home(), "eks-pod-identity-token")
        with open(token_file, "w") as f:
            f.write(state["token"] + "\n")
        # Strict: no token, no credentials.
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.provider.url + "/v1/credentials", timeout=5)
        self.assertEqual(e.exception.code, 401)
        self.provider.rejected = 0
        self.run_gateway(self.provider, {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.provider.url + "/v1/credentials",
                                         "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token_file}, seen_tokens)


class WebIdentityTest(CredentialsCase):
    """EKS IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE -> STS
    AssumeRoleWithWebIdentity (form POST, XML answer), at AWS_ENDPOINT_URL_STS."""

    def test_sts_assume_role_with_web_identity(self):
        role_arn = "arn:aws:iam::123456789012:role/siprec-recorder"
        jwt = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(32) + ".sig"

        def handle(h, method):
            if method != "POST":
                return h.reply(405, "")
            form = urllib.parse.parse_qs(h.body(), keep_blank_values=True)
            one = {k: v[0] for k, v in form.items()}
            ok = (one.get("Action") == "AssumeRoleWithWebIdentity" and one.get("Version") == "2011-06-15"
                  and one.get("RoleArn") == role_arn and one.get("RoleSessionName") == "gw-node-1"
                  and one.get("WebIdentityToken") == jwt and "Authorization" not in h.headers)
            if not ok:
                self.provider.count("rejected")
                return h.reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                                    "<Message>bad request</Message></Error></ErrorResponse>", "text/xml")
            self.provider.count("fetches")
            c = self.creds_json()
            xml = ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                   "<AssumeRoleWithWebIdentityResult>"
                   "<SubjectFromWebIdentityToken>system:serviceaccount:rec:siprecd</SubjectFromWebIdentityToken>"
                   f"<AssumedRoleUser><Arn>{role_arn}/gw-node-1</Arn><AssumedRoleId>AROA:gw-node-1</AssumedRoleId>"
                   "</AssumedRoleUser><Credentials>"
                   f"<AccessKeyId>{c['AccessKeyId']}</AccessKeyId><SecretAccessKey>{c['SecretAccessKey']}</SecretAccessKey>"
                   f"<SessionToken></SessionToken><Expiration>{c['Expiration']}</Expiration>"
                   "</Credentials><Audience>sts.amazonaws.com</Audience></AssumeRoleWithWebIdentityResult>"
                   f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                   "</AssumeRoleWithWebIdentityResponse>")
            return h.reply(200, xml, "text/xml")

        self.provider = ProviderServer(handle)
        self.addCleanup(self.provider.close)
        token_file = os.path.join(self.tmp_home(), "token")
        with open(token_file, "w") as f:
            f.write(jwt)
        d = self.run_gateway(self.provider, {"AWS_ROLE_ARN": role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
                                             "AWS_ROLE_SESSION_NAME": "gw-node-1",
                                             "AWS_ENDPOINT_URL_STS": self.provider.url}, [jwt])
        self.assertIn("web identity", d.stderr_text())


class NoCredentialsTest(CredentialsCase):
    """Nothing configured and no instance metadata: the sink says so, recordings stay queued."""

    def test_no_source_is_reported(self):
        def handle(h, method):
            self.provider.count("rejected")
            h.reply(404, "")

        self.provider = ProviderServer(handle)
        self.addCleanup(self.provider.close)
        bucket = self.new_bucket(lock=False)
        with self.aws_env({"AWS_EC2_METADATA_SERVICE_ENDPOINT": self.provider.url}):
            d = self.start_daemon({"s3": dict(bucket=bucket, endpoint=self.server.endpoint,
                                              region=self.server.region, path_style=True)})
        self.assertTrue(wait_until(lambda: "no instance profile" in d.stderr_text(), 10),
                        d.diagnostics())
        self.assertGreaterEqual(self.provider.rejected, 1)  # IMDS was asked, and said no


if __name__ == "__main__":
    unittest.main()
