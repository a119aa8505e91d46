#!/usr/bin/env python3
"""Call-control hook overhead (docs/integrations.md, docs/performance.md). Standard library only.

Starts, on loopback, a hook (http.server answering {"action": "record"} after --hook-ms, 5 ms by
default) and a fresh siprecd per run, then places --calls short calls at --rate calls per second
with siprec-src, twice: without the hook and with hooks.invite_url pointing at it. Prints the
INVITE -> 200 OK setup percentiles of both runs. A figure, not a test: nothing passes or fails.

    bench/hook_setup.py [--build build/release] [--rate 200] [--calls 2000] [--hook-ms 5]

Every process it starts is stopped by its pid; every wait is bounded.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hook_server(delay_ms):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            # Headers and body go out in two writes; without TCP_NODELAY the body waits for the
            # gateway's delayed ACK of the headers (about 40 ms on Linux): the hook would seem
            # 40 ms slower than it is. Every HTTP server meant for this sets it.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(delay_ms / 1000)
            body = b'{"action": "record"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def run(build, args, hook_url):
    tmp = tempfile.mkdtemp(prefix="sgw-hookbench-")
    sip_port = free_port()
    config = os.path.join(tmp, "siprecd.yaml")
    with open(config, "w") as f:
        f.write("log:\n  level: warn\n")
        if hook_url:
            f.write(f"hooks:\n  invite_url: {hook_url}\n  timeout_ms: 1000\n  on_error: reject\n")
    os.makedirs(os.path.join(tmp, "rec"))
    os.makedirs(os.path.join(tmp, "spool"))
    gw = subprocess.Popen([os.path.join(build, "src/app/siprecd"), "--config", config,
                           "--listen", f"udp:127.0.0.1:{sip_port}", "--media-address", "127.0.0.1",
                           "--rtp-ports", "20000-29999", "--recordings-dir", os.path.join(tmp, "rec"),
                           "--spool-dir", os.path.join(tmp, "spool")],
                          stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "stderr.log"), "w"), text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = gw.stdout.readline()
            if not line or line.startswith("siprecd ready"):
                break
        out = os.path.join(tmp, "src.json")
        subprocess.run([os.path.join(build, "src/siprec_src/siprec-src"), f"sip:127.0.0.1:{sip_port}",
                        "--calls", str(args.calls), "--rate", str(args.rate), "--concurrency", str(args.rate * 2),
                        "--duration", "1", "-q", "--json", out],
                       stdout=subprocess.DEVNULL, timeout=args.calls / args.rate + 120)
        with open(out) as f:
            doc = json.load(f)
        return doc
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(60)
        except subprocess.TimeoutExpired:
            gw.kill()
            gw.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--hook-ms", type=float, default=5)
    args = ap.parse_args()
    hook = hook_server(args.hook_ms)
    url = f"http://127.0.0.1:{hook.server_address[1]}/invite"
    print(f"{args.calls} calls at {args.rate} cps, hook answering after {args.hook_ms} ms; "
          f"{os.cpu_count()} cores: {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}")
    for name, hook_url in (("no hook", None), ("hook", url)):
        doc = run(args.build, args, hook_url)
        s = doc["setup_ms"]
        print(f"{name:8s} ok {doc['ok']}/{doc['calls']} failures {doc['failures']}  setup ms: "
              f"p50 {s['p50']}  p90 {s['p90']}  p99 {s['p99']}  max {s['max']}", flush=True)
    hook.shutdown()


if __name__ == "__main__":
    sys.exit(main())
