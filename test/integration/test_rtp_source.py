"""RTP source check (issue 8): a stream latches the address AND port of its
first valid packet. A flood from other ports of the SRC's own host (other
SSRCs, noise in the negotiated payload type) is refused: the recording holds
only the tone, one SSRC, and the JSON and the metric count the refused packets."""

import os
import random
import socket
import struct
import time
import unittest

from harness import wait_until
from test_recording import RecordingTestCase, probe, first_packet_ms

FLOOD_PORTS = 30
FLOOD_PER_PORT = 20


def rtp(ssrc, seq, payload):
    return struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, seq * 160, ssrc) + payload


class RtpSourceTest(RecordingTestCase):
    CONFIG = {"media": {"workers": 1}}

    def test_flood_from_other_ports_of_the_src_host_is_not_recorded(self):
        before = self.recordings()
        wrong_before = self.daemon.metrics().get("sgw_rtp_packets_wrong_source_total")
        with self.daemon.client("udp") as c:
            call, ports = self.start_call(c)
            sender = self.send([f"to=127.0.0.1:{ports[0]},codec=PCMA,tone=440",
                                f"to=127.0.0.1:{ports[1]},codec=PCMA,tone=1000"], 2000, background=True)
            # The tone's first packets latch the streams (the metric is published every 100 ms).
            self.assertTrue(wait_until(
                lambda: self.daemon.metrics().get("sgw_rtp_packets_received_total") >= 10, 5),
                self._diag("the tone did not arrive"))
            socks = []
            try:
                for _ in range(FLOOD_PORTS):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.bind(("127.0.0.1", 0))
                    socks.append(s)
                rng = random.Random(7)
                for i in range(FLOOD_PER_PORT):
                    for n, s in enumerate(socks):
                        s.sendto(rtp(0x1000 + n, i, os.urandom(160)), ("127.0.0.1", ports[0]))
                    time.sleep(0.02 * rng.random())
            finally:
                for s in socks:
                    s.close()
            sender.wait(30)
            self.assertStatus(call.bye(), 200, "BYE")
        doc, audio = self.wait_recording(before)
        flooded = FLOOD_PORTS * FLOOD_PER_PORT
        st = doc["streams"][0]
        self.assertEqual(len(st["ssrcs"]), 1, st)  # no foreign SSRC mixed into the timeline
        self.assertEqual(st["packets_received"], 100, st)
        integrity = {s["index"]: s for s in doc["integrity"]["streams"]}
        self.assertEqual(integrity[0]["packets_wrong_source"], flooded, integrity)
        self.assertEqual(integrity[1]["packets_wrong_source"], 0, integrity)
        self.assertEqual(integrity[0]["packets_kernel_dropped"], 0, integrity)
        self.assertTrue(any(f"{flooded} packet(s) from an unexpected source" in w for w in doc["warnings"]),
                        doc["warnings"])
        self.assertTrue(doc["complete"], doc)  # refused packets are not audio we lost
        self.assertGreaterEqual(self.daemon.metrics().get("sgw_rtp_packets_wrong_source_total") - wrong_before,
                                flooded)
        left, right = probe(audio[0])["channel_stats"]
        self.assertTone(left, 440, first_packet_ms(doc, 0), 2000, "tone under a flood")
        self.assertEqual(len(left["segments"]), 1, left["segments"])
        self.assertTone(right, 1000, first_packet_ms(doc, 1), 2000, "the other stream")


if __name__ == "__main__":
    unittest.main()
