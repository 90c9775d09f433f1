"""Damage to a real broker's journal: one flipped bit costs at most the one
message it hit, the damaged file is kept as .bad, recovery says at ERROR
level what it skipped, and the broker goes on storing (docs/journal.md)."""
import os
import struct

from mqtest import client
from test_persistence import drain

N = 2000


def journal_dir(broker):
    return os.path.join(broker.data_dir, "journal")


def segments(broker):
    d = journal_dir(broker)
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".seg")]


def message_records(path):
    """(offset, length) of each MESSAGE record in a segment, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    off, out = 32, []
    while off + 9 <= len(data):
        length = struct.unpack_from("<I", data, off)[0]
        if data[off + 8] == 1:
            out.append((off, length))
        off += 8 + length
    return out


def flip(path, offset, bit):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ (1 << bit)]))


def fill(broker, dest, n, start=0):
    p, prec = client(broker)
    for i in range(start, start + n):
        p.send(dest, f"m{i:05d}" + "x" * 1000, headers={"persistent": "true"},
               receipt="last" if i == start + n - 1 else None)
    prec.wait_receipt("last", timeout=60)
    p.disconnect()


def bodies(broker, dest):
    return sorted(m.body[:6] for m in drain(broker, dest))


def error_lines(log):
    return [line for line in log.splitlines() if " ERROR: " in line]


def test_flipped_bit_in_a_message_costs_that_message_only(broker):
    fill(broker, "/queue/dmg", N)
    broker.stop()
    seg = segments(broker)[-1]
    size = os.path.getsize(seg)
    off, length = message_records(seg)[9]  # message 10
    flip(seg, off + 8 + 13 + length // 2, 3)
    broker.start()
    log = broker.read_log()
    assert "recovery skipped 1 damaged record" in log, log[-3000:]
    assert any("00000001.seg: skipped" in line and "(1 record)" in line for line in error_lines(log)), log[-3000:]
    assert os.path.getsize(seg + ".bad") == size  # the file as it was, for inspection
    assert os.path.getsize(seg) == size - (8 + length)
    assert bodies(broker, "/queue/dmg") == [f"m{i:05d}" for i in range(N) if i != 9]

    # The broker goes on storing; the next start is clean.
    fill(broker, "/queue/dmg", 10, start=N)
    mark = len(broker.read_log())
    broker.restart()
    assert not error_lines(broker.read_log()[mark:])
    assert bodies(broker, "/queue/dmg") == [f"m{i:05d}" for i in range(N, N + 10)]


def test_flipped_bit_in_a_length_field_costs_one_message(broker):
    fill(broker, "/queue/len", 300)
    broker.stop()
    seg = segments(broker)[-1]
    off, _ = message_records(seg)[100]
    flip(seg, off + 2, 5)  # the record's length: the search must find the next one
    broker.start()
    assert "recovery skipped 1 damaged record" in broker.read_log()
    assert bodies(broker, "/queue/len") == [f"m{i:05d}" for i in range(300) if i != 100]


def test_flipped_bit_in_a_segment_header_loses_nothing(broker):
    fill(broker, "/queue/hdr", 500)
    broker.stop()
    seg = segments(broker)[-1]  # the newest segment: it used to be deleted
    flip(seg, 20, 0)  # its number
    broker.start()
    log = broker.read_log()
    assert "its header is damaged" in log, log[-3000:]
    assert os.path.exists(seg + ".bad")
    assert bodies(broker, "/queue/hdr") == [f"m{i:05d}" for i in range(500)]


def test_torn_tail_is_still_cut_without_alarm(broker):
    fill(broker, "/queue/tail", 50)
    broker.kill()
    seg = segments(broker)[-1]
    with open(seg, "r+b") as f:
        f.truncate(os.path.getsize(seg) - 7)  # half a record: what a crash leaves
    broker.start()
    log = broker.read_log()
    assert "cutting a torn tail" in log
    assert not error_lines(log), error_lines(log)
    assert not [f for f in os.listdir(journal_dir(broker)) if ".bad" in f]
    assert bodies(broker, "/queue/tail") == [f"m{i:05d}" for i in range(49)]
