#!/usr/bin/env python3
"""Independent reader of walctl logs, written from docs/FORMAT.md alone (standard library only).

    python3 tools/walctl_decode.py LOGDIR            # JSON Lines: one object per valid record
    python3 tools/walctl_decode.py --verdict LOGDIR  # prints clean | torn_tail | corrupt

An auditor can decode a log without trusting walctl. It follows the spec's sections by number;
where it disagrees with walctl, the spec or the code is wrong.
"""
import base64, json, os, re, struct, sys

MAGIC = b"\x89WAL\r\n\x1a\n"                     # §2.1
DATA_START, SLOTS = 12288, (4096, 8192)           # §2, §2.2
RECORD_SIZE_LIMIT = 1 << 30                       # §4

def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t
_T = _table()

def crc32c(data, crc=0):                          # CRC32C, reflected, init/xorout 0xFFFFFFFF
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

def mask(c):                                      # §5
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

def header(b):                                    # §2.1; None when unreadable
    if len(b) < 64 or b[:8] != MAGIC or mask(crc32c(b[:60])) != struct.unpack_from("<I", b, 60)[0]:
        return None
    ver, size, flags, log_id, seg, first, log_first, created = struct.unpack_from("<HHIQQQQQ", b, 8)
    if ver > 2 or flags & ~3:                     # §10: version 2 adds durable_end, unused here
        raise SystemExit("unsupported version or flags")
    if ver == 0 or size != 64 or not (0 < first < 2**64 - 1 and 0 < log_first < 2**64 - 1):
        return None
    return dict(flags=flags, log_id=log_id, segment=seg, first_seq=first, log_first_seq=log_first)

def watermark(b, bind):                           # §2.2: newest valid slot
    best = None
    for at in SLOTS:
        s = b[at:at + 32]
        if len(s) == 32 and mask(crc32c(s[:28], crc32c(bind))) == struct.unpack_from("<I", s, 28)[0]:
            seq, gen = struct.unpack_from("<QQ", s, 0)
            if best is None or gen > best[1]:
                best = (seq, gen)
    return best

def record(b, pos, bind):                         # §3; a dict, or None when no record starts here
    if len(b) - pos < 32:
        return None
    h = b[pos:pos + 32]
    c1 = crc32c(h[8:32], crc32c(bind))
    if mask(c1) != struct.unpack_from("<I", h, 4)[0]:
        return None
    plen, klen, kind, flags, seq, ts = struct.unpack_from("<IHBBQQ", h, 8)
    has_key = flags & 1
    if kind not in (1, 2) or flags & ~1 or (not has_key and klen) or plen + klen > RECORD_SIZE_LIMIT \
            or not 0 < seq < 2**64 - 1 or (kind == 2 and (not has_key or plen)):
        return None
    end = pos + 32 + klen + plen
    if end > len(b) or mask(crc32c(b[pos + 32:end], c1)) != struct.unpack_from("<I", h, 0)[0]:
        return None
    return dict(seq=seq, timestamp_nanos=ts, type="data" if kind == 1 else "tombstone",
                key=b[pos + 32:pos + 32 + klen] if has_key else None,
                payload=b[pos + 32 + klen:end], offset=pos, length=end - pos,
                crc=struct.unpack_from("<I", h, 0)[0])

def scan_segment(b, h, sealed):
    """Returns (records, damage) for one segment; damage entries are dicts with the first
    damage's last good sequence number (§8)."""
    bind = struct.pack("<QQ", h["log_id"], h["segment"])
    records, damage, pos, last = [], [], DATA_START, h["first_seq"] - 1
    compacted = h["flags"] & 1
    if any(b[64:4096]) or any(b[4128:8192]) or any(b[8224:DATA_START]):
        damage.append(dict(kind="bad_segment_header", last_good=last))
    while pos < len(b):
        r = record(b, pos, bind)
        if r is not None and r["seq"] > last:
            if r["seq"] != last + 1 and not compacted and not (damage and damage[-1].get("bytes")):
                damage.append(dict(kind="sequence_gap", last_good=last))
            records.append(r)
            last, pos = r["seq"], pos + r["length"]
            continue
        if r is not None:                         # a valid record that does not increase
            damage.append(dict(kind="sequence_regression", last_good=last))
            pos += r["length"]
            continue
        if h["flags"] & 2 and not any(b[pos:]):  # preallocated zeros: the end (§2.1)
            break
        damage.append(dict(kind="bytes", last_good=last, bytes=True))
        nxt = pos + 1                             # resynchronise (§8)
        while nxt <= len(b) - 32:
            q = record(b, nxt, bind) if b[nxt + 14] in (1, 2) and b[nxt + 15] <= 1 else None
            if q is not None and q["seq"] > last:
                break
            nxt += 1
        pos = nxt if nxt <= len(b) - 32 else len(b)
    w = watermark(b, bind)
    if sealed:
        bad_slot = any(any(b[a:a + 32]) and watermark(b[:a] + b[a:a + 32], bind) is None for a in SLOTS)
        if records and (w is None or w[0] != records[-1]["seq"]) or bad_slot:
            damage.append(dict(kind="bad_watermark", last_good=last))
    return records, damage, (w[0] if w else 0)

def scan(logdir):
    names = sorted(n for n in os.listdir(logdir) if re.fullmatch(r"[0-9]{20}\.wal", n))
    if not names:
        raise SystemExit(f"{logdir}: no segments")
    if os.path.exists(os.path.join(logdir, "SALVAGE-INCOMPLETE")):  # §6.7
        raise SystemExit(f"{logdir}: an interrupted salvage, not a log")
    marker = os.path.join(logdir, "COMPACTION")  # §6.6: old range if complete, else new
    if os.path.exists(marker):
        m = json.load(open(marker))
        nums = {int(n[:20]) for n in names}
        old = set(range(m["old_first"], m["old_last"] + 1))
        rng = old if old <= nums else set(range(m["new_first"], m["new_last"] + 1))
        names = [n for n in names if int(n[:20]) in rng]
    data = [open(os.path.join(logdir, n), "rb").read() for n in names]
    headers = [header(b) for b in data]
    ids = [h["log_id"] for h in headers if h]
    log_id = ids[-1] if ids else None
    records, corrupt, tail, expect, w_sealed, w_last = [], False, None, None, 0, 0
    first_header = headers[0] if headers else None  # unreadable: its own damage, no head check
    if first_header and headers[-1] and first_header["first_seq"] > headers[-1]["log_first_seq"]:
        corrupt = True                            # missing head
    for i, (n, b, h) in enumerate(zip(names, data, headers)):
        sealed = i + 1 < len(names)
        if i and int(n[:20]) != int(names[i - 1][:20]) + 1:
            corrupt, expect = True, None          # missing segment
        if h is None or len(b) < DATA_START or h["log_id"] != log_id or h["segment"] != int(n[:20]):
            corrupt, expect = True, None
            if h is None or h["log_id"] != log_id or len(b) < DATA_START:
                continue
        if expect and (h["first_seq"] < expect[0] or expect[1] and h["first_seq"] > expect[0]):
            corrupt = True
        recs, damage, w = scan_segment(b, h, sealed)
        for r in recs:
            r["segment"] = h["segment"]
        records += recs
        if sealed:
            corrupt |= bool(damage)
            w_sealed = recs[-1]["seq"] if recs else h["first_seq"] - 1
        else:
            tail, w_last = damage, w
        expect = ((recs[-1]["seq"] + 1) if recs else h["first_seq"], not h["flags"] & 1)
    wm = max(w_sealed, w_last)
    if tail:
        torn = tail[0]["kind"] != "bad_segment_header" and tail[0]["last_good"] >= wm
        corrupt |= not torn
    elif headers[-1] and wm > max(records[-1]["seq"] if records else 0, headers[-1]["first_seq"] - 1):
        corrupt = True                            # missing acknowledged records
    verdict = "corrupt" if corrupt else ("torn_tail" if tail else "clean")
    return records, verdict

def main(argv):
    if len(argv) == 3 and argv[1] == "--verdict":
        print(scan(argv[2])[1])
        return
    if len(argv) != 2:
        raise SystemExit(__doc__)
    for r in scan(argv[1])[0]:
        out = dict(seq=r["seq"], timestamp_nanos=r["timestamp_nanos"], type=r["type"],
                   key=None if r["key"] is None else base64.b64encode(r["key"]).decode(),
                   payload=base64.b64encode(r["payload"]).decode(), segment=r["segment"],
                   offset=r["offset"], length=r["length"], crc=r["crc"])
        print(json.dumps(out))

if __name__ == "__main__":
    main(sys.argv)
