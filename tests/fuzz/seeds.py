#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ (kept in the tree; run again
only to change them). Each seed is small: libFuzzer mutates from there."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record(typ, body):
    body = bytes([typ]) + body
    return struct.pack("<II", len(body), crc32c(body)) + body


def message(qid, mid, payload):
    return record(1, struct.pack("<IQ", qid, mid) + payload)


def enqueue(qid, mid):
    return record(2, struct.pack("<IQ", qid, mid))


def remove(qid, mid):
    return record(3, struct.pack("<IQ", qid, mid))


def meta_put(key, val):
    return record(4, struct.pack("<H", len(key)) + key + val)


def meta_del(key):
    return record(5, struct.pack("<H", len(key)) + key)


def segment(no, snapshot, records):
    head = b"MQJRNL\x1a\n" + struct.pack("<IIQI", 1, 32, no, len(snapshot))
    head += struct.pack("<I", crc32c(head))
    return head + snapshot + records


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frames():
    # byte 0: version (bits 0-1) and small limits (bit 2); byte 1: split seed
    write("frame", "connect_send_1_2", b"\x02\x07" +
          b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0"
          b"SEND\ndestination:/queue/a\nreceipt:r1\nx-esc:a\\cb\\nc\\\\d\\re\n\nhello\0\n\r\n")
    write("frame", "binary_body_1_1", b"\x01\x33" +
          b"SEND\ndestination:/queue/b\ncontent-length:5\n\na\0b\0c\0"
          b"SUBSCRIBE\r\nid:1\r\ndestination:/topic/t\r\nack:client\r\n\r\n\0")
    write("frame", "messages_1_0", b"\x00\x11" +
          b"MESSAGE\ndestination:/queue/a\nmessage-id:7\nsubscription:1\n\nbody\0"
          b"ACK\nmessage-id:7\ntransaction:t1\n\n\0BEGIN\ntransaction:t1\n\n\0COMMIT\ntransaction:t1\n\n\0")
    write("frame", "small_limits", b"\x06\x05" + b"SEND\n" + b"".join(b"h%d:v\n" % i for i in range(10)) + b"\n\0")
    write("frame", "garbage", b"\x02\x01" + b"NOTAFRAME\0\xde\xad\xbe\xef not a frame \0")


def cmdlines():
    for i, line in enumerate([
        b"list queues",
        b"create queue \"/queue/a b\" persistent max-length=100 ttl=1h",
        b"purge '/queue/x' \\\"q\\ r",
        b"config set lua_budget 1000000",
        b"send /queue/a \"a \\\"quoted\\\" body\\n\"",
        b"unterminated \"quote",
    ]):
        write("cmdline", f"line{i}", line)


def jsons():
    write("json", "object", b'{"host":"127.0.0.1","port":61613,"tls_port":null,"pid":123,'
                            b'"ok":true,"list":[1,-2.5e3,"x\\u00e9\\ud83d\\ude00\\n",[],{}]}')
    write("json", "reply", b'{"status":200,"ok":true,"data":{"rows":[{"name":"/queue/a","depth":0}]}}')
    write("json", "scalars", b' [false, 0.1, 1e308, "\\"\\\\\\/\\b\\f\\r\\t"] ')


def journals():
    sep = b"\n--seg--\n"
    snap = meta_put(b"d:1", b'{"vhost":"/","name":"/queue/a","type":"queue"}')
    one = segment(1, snap,
                  message(1, 1, b"payload one") + message(1, 2, b"two") + enqueue(2, 1) +
                  remove(1, 1) + meta_put(b"d:2", b'{"name":"/queue/b"}') + meta_del(b"d:9") +
                  message(2, 3, b"x" * 40))
    two = segment(2, snap + meta_put(b"d:2", b"{}"), remove(2, 1) + message(1, 1, b"compacted copy") +
                  enqueue(3, 2))
    write("journal", "one_segment", b"\x00" + one)
    write("journal", "two_segments", b"\x00" + one + sep + two)
    write("journal", "fixed_crcs", b"\x01" + one + sep + two + sep + segment(3, b"", b""))
    write("journal", "torn_tail", b"\x00" + one[:-7])


def configs():
    with open(os.path.join(ROOT, "lua", "broker.lua"), "rb") as f:
        write("config", "broker", f.read())
    write("config", "rules", b"""
max_frame = "1MiB"
users = { { login = "alice", passcode = "s3cret", admin = true } }
destinations = {
  { "/queue/jobs", "queue", persistent = true, max_length = 1000 },
  { "/pubsub/events", "pubsub", children = { "/queue/audit" } },
}
types = { { "^/jobs/", "queue" } }
function route(msg)
  if msg.headers["priority"] == "high" then return "/queue/urgent" end
  return { msg.destination, "/queue/audit" }
end
function authorize(login, action, dest)
  if action == "admin" then return login == "alice" end
  return true
end
""")
    write("config", "errors", b"listeners = { port = 'x' }\nlocal t = {} for i = 1, 1e9 do t[i] = i end\n")


if __name__ == "__main__":
    frames()
    cmdlines()
    jsons()
    journals()
    configs()
