"""Operations: a real Prometheus (the Debian package's binary) scrapes a real siprecd.

The shipped alert rules (contrib/prometheus/alerts.yml) pass `promtool check rules`.
Prometheus is started here on a free loopback port with a temporary config and
storage folder, scraping the gateway every second and evaluating a copy of the
shipped rules whose `for:` durations are 0s. Two calls from the real siprec-src
must show up as recorded series (queried over Prometheus's HTTP API); then the
gateway is killed (kill -9, a real failure) and SiprecNodeNotReady must fire.
Prometheus is stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest
import urllib.parse
import urllib.request

from harness import LOOPBACK, Daemon, free_tcp_port, wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(REPO, "contrib", "prometheus", "alerts.yml")
DASHBOARD = os.path.join(REPO, "contrib", "grafana", "siprec-gateway.json")


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the shipped Grafana dashboard, its variables
    replaced the way Grafana does for "All" and a short range."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            out.append(t["expr"].replace("$job", ".*").replace("$instance", ".*")
                       .replace("$__rate_interval", "30s").replace("$__range", "5m"))
    return out


def metric_names(text: str) -> set[str]:
    """sgw_* metric names an expression or rule file refers to (histogram
    series suffixes stripped)."""
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bsgw_[a-z0-9_]+", text)}


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise AssertionError(f"{name} not found: install the Debian package prometheus (scripts/install-deps)")
    return path


class PromtoolTest(unittest.TestCase):

    def test_shipped_rules_pass_promtool(self):
        p = subprocess.run([tool("promtool"), "check", "rules", RULES], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS: 5 rules found", p.stdout)

    def test_rules_and_dashboard_name_metrics_the_gateway_exports(self):
        daemon = Daemon()
        self.addCleanup(daemon.cleanup)
        daemon.start()
        status, body, _ = daemon.http("/metrics")
        self.assertEqual(status, 200)
        exported = set(re.findall(r"(?m)^# TYPE (sgw_[a-z0-9_]+) ", body))
        with open(RULES) as f:
            used = metric_names(f.read())
        for e in dashboard_exprs():
            used |= metric_names(e)
        self.assertGreater(len(used), 20)
        self.assertEqual(used - exported, set(), "alerts.yml / the dashboard name metrics siprecd does not export")


class PrometheusScrapeTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sgw-prom-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.daemon = Daemon()
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()
        with open(RULES) as f:
            rules = re.sub(r"(?m)^(\s*)for: \S+$", r"\1for: 0s", f.read())
        with open(os.path.join(self.tmp, "rules.yml"), "w") as f:
            f.write(rules)
        with open(os.path.join(self.tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files: [rules.yml]\n"
                    "scrape_configs:\n  - job_name: siprec-gateway\n"
                    f"    static_configs: [{{targets: ['{LOOPBACK}:{self.daemon.http_port}']}}]\n")
        self.port = free_tcp_port()
        self.log = open(os.path.join(self.tmp, "prometheus.log"), "wb")
        self.addCleanup(self.log.close)
        self.prom = subprocess.Popen(
            [tool("prometheus"), f"--config.file={self.tmp}/prometheus.yml",
             f"--storage.tsdb.path={self.tmp}/data", f"--web.listen-address={LOOPBACK}:{self.port}"],
            cwd=self.tmp, stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_prometheus)
        self.assertTrue(wait_until(lambda: self.get("/-/ready") is not None, 30), self.prom_log())

    def stop_prometheus(self):
        if self.prom.poll() is None:
            self.prom.send_signal(signal.SIGTERM)
            try:
                self.prom.wait(15)
            except subprocess.TimeoutExpired:
                self.prom.kill()
                self.prom.wait()

    def prom_log(self) -> str:
        with open(os.path.join(self.tmp, "prometheus.log"), errors="replace") as f:
            return f.read()[-3000:]

    def get(self, path: str):
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}{path}", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def query(self, expr: str) -> float | None:
        body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if body is None:
            return None
        res = json.loads(body)["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def firing(self) -> set[str]:
        body = self.get("/api/v1/alerts")
        if body is None:
            return set()
        return {a["labels"]["alertname"] for a in json.loads(body)["data"]["alerts"] if a["state"] == "firing"}

    def test_calls_are_scraped_and_a_dead_node_fires_its_alert(self):
        src = os.environ.get("SIPREC_SRC", "")
        self.assertTrue(src and os.access(src, os.X_OK), "SIPREC_SRC not set")
        # Prometheus has scraped the idle gateway before the calls (the counters' rise is then
        # in its data, as on a node that runs for long).
        self.assertTrue(wait_until(lambda: (self.query("count_over_time(sgw_ready[1m])") or 0) >= 2, 30),
                        self.prom_log())
        p = subprocess.run([src, f"sip:{LOOPBACK}:{self.daemon.sip_port}", "--calls", "2", "--concurrency", "2",
                            "--duration", "2", "-q", "--verify", self.daemon.recordings_dir],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.daemon.diagnostics(30))
        expect = {
            "sgw_recordings_published_total": 2,
            "sgw_setup_latency_seconds_count": 2,
            'sgw_invites_total{code="200"}': 2,
            "sgw_recorded_stream_loss_ratio_count": 4,  # two streams per call
            "sgw_ready": 1,
        }
        for expr, want in expect.items():
            self.assertTrue(wait_until(lambda: (self.query(expr) or 0) >= want, 20),
                            f"{expr}: Prometheus has {self.query(expr)}, want >= {want}\n{self.prom_log()}")
        # Packets are accounted per published stream: received covers expected less the lost ones.
        exp = self.query("sgw_recorded_packets_expected_total")
        rec = self.query("sgw_recorded_packets_received_total")
        self.assertGreater(exp, 150)  # 2 calls x 2 streams x 2 s at 50 packets/s, give or take
        self.assertGreaterEqual(rec + self.query("sgw_recorded_packets_lost_total"), exp)
        self.assertGreater(self.query("sgw_spool_free_bytes"), 0)
        self.assertLessEqual(self.query("histogram_quantile(0.5, sgw_setup_latency_seconds_bucket)"), 5)
        # Every panel of the shipped dashboard is valid PromQL over this data, and the
        # panels on calls and integrity show the two calls.
        for expr in dashboard_exprs():
            body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
            self.assertIsNotNone(body, expr)
            self.assertEqual(json.loads(body)["status"], "success", expr)
        def panel(name: str) -> dict[str, float]:
            expr = next(e for e in dashboard_exprs() if name in e)
            body = json.loads(self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
            return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in body["data"]["result"]}
        self.assertEqual(list(panel("sgw_ready").values()), [1.0])
        # "Streams by loss ratio" (increase over the range): the four streams are in the +Inf bucket.
        def inf_streams() -> float:
            return sum(v for k, v in panel("sgw_recorded_stream_loss_ratio_bucket").items() if '"+Inf"' in k)
        # increase() extrapolates, so about 4 (the four streams recorded), never 0.
        self.assertTrue(wait_until(lambda: inf_streams() >= 3.5, 20),
                        f"Streams by loss ratio shows {panel('sgw_recorded_stream_loss_ratio_bucket')}")
        self.assertNotIn("SiprecNodeNotReady", self.firing())
        # A real failure: the gateway dies; the scrape fails, up == 0, the alert fires.
        self.daemon.kill()
        self.assertTrue(wait_until(lambda: "SiprecNodeNotReady" in self.firing(), 30),
                        f"firing: {self.firing()}\n{self.prom_log()}")


if __name__ == "__main__":
    unittest.main()
