"""A minimal S3 client for the integration tests (standard library only):
SigV4-signed requests (header auth, signed payload) with path-style URLs, and
the few operations the tests need to look at what the gateway delivered.
Independent of the gateway's own signer on purpose."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import urllib.parse
import xml.etree.ElementTree as ET

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(Exception):
    def __init__(self, status, code, message, body=b""):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body


def _enc(s: str, slash: bool) -> str:
    return urllib.parse.quote(s, safe="-_.~" + ("/" if not slash else ""))


class S3:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1",
                 timeout: float = 30.0, session_token: str = "", service: str = "s3"):
        """session_token: temporary credentials (sent as x-amz-security-token, signed);
        service: the SigV4 scope's service ("iam" for the IAM API on the same endpoint)."""
        u = urllib.parse.urlparse(endpoint)
        self.host, self.port = u.hostname, u.port or 80
        self.authority = u.netloc
        self.ak, self.sk, self.region, self.timeout = access_key, secret_key, region, timeout
        self.session_token, self.service = session_token, service

    def request(self, method: str, bucket: str, key: str = "", query: dict | None = None,
                headers: dict | None = None, body: bytes = b"") -> tuple[int, dict, bytes]:
        query = query or {}
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        path = "/" + bucket + ("/" + key if key else "")
        cpath = _enc(path, False)
        cq = "&".join(f"{_enc(k, True)}={_enc(str(v), True)}" for k, v in sorted(query.items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        amz = now.strftime("%Y%m%dT%H%M%SZ")
        payload = hashlib.sha256(body).hexdigest()
        headers.update({"host": self.authority, "x-amz-date": amz, "x-amz-content-sha256": payload})
        if self.session_token:
            headers["x-amz-security-token"] = self.session_token
        names = sorted(headers)
        creq = "\n".join([method, cpath, cq] + [f"{n}:{' '.join(str(headers[n]).split())}" for n in names]
                         + ["", ";".join(names), payload])
        scope = f"{amz[:8]}/{self.region}/{self.service}/aws4_request"
        sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + self.sk).encode()
        for part in (amz[:8], self.region, self.service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={sig}")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, cpath + ("?" + cq if cq else ""), body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            rh = {k.lower(): v for k, v in r.getheaders()}
            return r.status, rh, data
        finally:
            conn.close()

    def _check(self, status, headers, body):
        if status >= 300:
            code, msg = f"Http{status}", ""
            try:
                root = ET.fromstring(body)
                code = root.findtext("Code") or code
                msg = root.findtext("Message") or ""
            except ET.ParseError:
                pass
            raise S3Error(status, code, msg, body)
        return status, headers, body

    # -- operations ----------------------------------------------------------
    def create_bucket(self, bucket: str, object_lock: bool):
        h = {"x-amz-bucket-object-lock-enabled": "true"} if object_lock else {}
        self._check(*self.request("PUT", bucket, headers=h))

    def head(self, bucket: str, key: str, version_id: str | None = None) -> dict:
        q = {"versionId": version_id} if version_id else {}
        return self._check(*self.request("HEAD", bucket, key, q))[1]

    def get(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        q = {"versionId": version_id} if version_id else {}
        return self._check(*self.request("GET", bucket, key, q))[2]

    def delete(self, bucket: str, key: str, version_id: str | None = None):
        q = {"versionId": version_id} if version_id else {}
        self._check(*self.request("DELETE", bucket, key, q))

    def put_retention(self, bucket: str, key: str, version_id: str, mode: str, until: str):
        body = (f'<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>{mode}</Mode>'
                f"<RetainUntilDate>{until}</RetainUntilDate></Retention>").encode()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        self._check(*self.request("PUT", bucket, key, {"retention": "", "versionId": version_id},
                                  {"content-md5": md5, "content-type": "application/xml"}, body))

    def tagging(self, bucket: str, key: str, version_id: str | None = None) -> dict:
        """GetObjectTagging: {name: value}."""
        q = {"tagging": ""}
        if version_id:
            q["versionId"] = version_id
        body = self._check(*self.request("GET", bucket, key, q))[2]
        root = ET.fromstring(body)
        return {t.findtext(f"{NS}Key", t.findtext("Key")): t.findtext(f"{NS}Value", t.findtext("Value")) or ""
                for t in root.iter() if t.tag in (f"{NS}Tag", "Tag")}

    def versions(self, bucket: str, prefix: str = "") -> list[dict]:
        out, marker, vmarker = [], None, None
        while True:
            q = {"versions": "", "prefix": prefix}
            if marker:
                q["key-marker"] = marker
            if vmarker:
                q["version-id-marker"] = vmarker
            _, _, body = self._check(*self.request("GET", bucket, "", q))
            root = ET.fromstring(body)
            for v in root.findall(NS + "Version"):
                out.append(dict(key=v.findtext(NS + "Key"), version_id=v.findtext(NS + "VersionId"),
                                size=int(v.findtext(NS + "Size") or 0),
                                etag=(v.findtext(NS + "ETag") or "").strip('"'), delete_marker=False,
                                owner=v.findtext(f"{NS}Owner/{NS}ID") or ""))
            for v in root.findall(NS + "DeleteMarker"):
                out.append(dict(key=v.findtext(NS + "Key"), version_id=v.findtext(NS + "VersionId"),
                                size=0, etag="", delete_marker=True))
            if root.findtext(NS + "IsTruncated") != "true":
                return out
            marker = root.findtext(NS + "NextKeyMarker")
            vmarker = root.findtext(NS + "NextVersionIdMarker")
