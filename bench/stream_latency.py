"""Live-audio latency at N concurrent streamed calls (docs/integrations.md, docs/performance.md).

Starts siprecd with stream.url pointing at the test AudioHook server (test/integration/
test_stream.py), runs siprec-src with N concurrent calls of D seconds, and prints the per-call
latency figures the gateway measured (packet arrival -> frame written) from the recording JSONs.
Usage: SIPRECD=... SIPREC_SRC=... python3 bench/stream_latency.py [N] [D]
"""
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "integration"))
from harness import LOOPBACK, Daemon, wait_until  # noqa: E402
from test_stream import AudioHookServer  # noqa: E402


import harness  # noqa: E402


def rtp_block(count):
    """(min, max) of `count` UDP ports on 127.0.0.1 that bind now, outside the kernel's ephemeral
    range (a benchmark's range may exceed the harness's 200-port test chunks)."""
    lo, hi = harness._ephemeral_ports()
    for base in range(20000, 65536 - count, 1000):
        if (base + count - 1 < lo or base > hi) and harness._udp_ports_bind(base, count):
            return base, base + count - 1
    sys.exit(f"stream_latency: no {count} free UDP ports on 127.0.0.1 outside {lo}-{hi}")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    dur = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    server = AudioHookServer()
    d = Daemon(config={"stream": {"url": server.url}, "sip": {"max_sessions": n * 2}}, log_level="info")
    # The harness's range is 200 ports (100 calls of two RTP port pairs); N calls need 4 N.
    d.rtp_min, d.rtp_max = rtp_block(4 * n + 64)
    d.start()
    try:
        t0 = time.monotonic()
        p = subprocess.run([os.environ["SIPREC_SRC"], f"sip:{LOOPBACK}:{d.sip_port}", "--calls", str(n),
                            "--concurrency", str(n), "--rate", "50", "--duration", str(dur)],
                           capture_output=True, text=True, timeout=600)
        print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-500:])
        docs = []

        def look():
            docs.clear()
            for path in glob.glob(os.path.join(d.recordings_dir, "**", "*.json"), recursive=True):
                with open(path) as f:
                    docs.append(json.load(f))
            return len(docs) >= n
        wait_until(look, 120, 0.5)
        ls = [doc["live_stream"] for doc in docs if "live_stream" in doc]
        p99s = sorted(x["latency_p99_ms"] for x in ls)
        maxes = sorted(x["latency_max_ms"] for x in ls)
        sent = sum(x["frames_sent"] for x in ls)
        dropped = sum(x["frames_dropped"] + x["packets_dropped"] for x in ls)
        print(f"{len(ls)} streamed recordings of {n} calls x {dur:g} s ({time.monotonic() - t0:.0f} s): "
              f"per-call p99 latency median {p99s[len(p99s) // 2]} ms, worst {p99s[-1]} ms; "
              f"worst max {maxes[-1]} ms; frames sent {sent}, dropped {dropped}")
    finally:
        d.stop()
        d.cleanup()
        server.stop()


if __name__ == "__main__":
    main()
