"""total_queue: a checker of the kind Jepsen calls a total queue.

Every message a producer sends carries its own identity and a checksum of
its body. The checker records what was sent, what the broker acknowledged
with a RECEIPT, and what consumers were given. Then:

  lost        acknowledged, and never delivered: the broker broke its word
  corrupt     delivered with a body that does not match its checksum
  unexpected  delivered, but never sent by anyone
  duplicated  delivered more than once (allowed: delivery is at least once)
  recovered   delivered though its RECEIPT never came (allowed: the broker
              may store a message and die before saying so)

A run is good when lost, corrupt and unexpected are all zero.
"""
import collections
import threading
import zlib


class TotalQueue:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = set()
        self.acked = set()
        self.delivered = collections.Counter()
        self.corrupt = []
        self.unexpected = []

    @staticmethod
    def body(producer, seq, pad=0):
        """The body for message `seq` of `producer`: its id, padding, and a CRC of both."""
        ident = f"{producer}-{seq}"
        text = f"{ident}:" + "x" * pad
        return f"{text}|{zlib.crc32(text.encode()):08x}"

    @staticmethod
    def ident(body):
        return body.split(":", 1)[0]

    def on_send(self, ident):
        with self.lock:
            self.sent.add(ident)

    def on_receipt(self, ident):
        with self.lock:
            self.acked.add(ident)

    def on_delivery(self, body):
        if isinstance(body, bytes):
            body = body.decode(errors="replace")
        text, _, crc = body.rpartition("|")
        with self.lock:
            if not text or crc != f"{zlib.crc32(text.encode()):08x}":
                self.corrupt.append(body[:80])
                return
            ident = self.ident(text)
            if ident not in self.sent:
                self.unexpected.append(ident)
            self.delivered[ident] += 1

    def verdict(self):
        with self.lock:
            got = set(self.delivered)
            return {
                "sent": len(self.sent),
                "acked": len(self.acked),
                "delivered": len(got),
                "lost": sorted(self.acked - got),
                "corrupt": list(self.corrupt),
                "unexpected": list(self.unexpected),
                "duplicated": sum(n - 1 for n in self.delivered.values()),
                "recovered": len(got - self.acked),
            }

    def assert_good(self):
        v = self.verdict()
        summary = (f"sent {v['sent']}, acked {v['acked']}, delivered {v['delivered']}, "
                   f"duplicated {v['duplicated']}, recovered {v['recovered']}")
        assert not v["lost"], f"{len(v['lost'])} acknowledged messages lost, e.g. {v['lost'][:5]} ({summary})"
        assert not v["corrupt"], f"{len(v['corrupt'])} corrupt deliveries, e.g. {v['corrupt'][:3]} ({summary})"
        assert not v["unexpected"], f"{len(v['unexpected'])} deliveries never sent ({summary})"
        return v
