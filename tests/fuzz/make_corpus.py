#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/: a
handful of small valid and invalid inputs each) and their libFuzzer
dictionaries (tests/fuzz/dict/<target>.dict: the field names from
event_fields.def, the flags from the settings table in config.c). Run it
again after changing it or those files; the output is kept in the repository."""
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# ---- A small msgpack encoder (maps, strings, integers, booleans, arrays) ----

def mp(v):
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if v is None:
        return b"\xc0"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v <= 0xFFFFFFFF:
            return b"\xce" + struct.pack(">I", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        if len(v) < 32:
            return bytes([0xA0 | len(v)]) + v
        return b"\xd9" + bytes([len(v)]) + v
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


EVENT = {
    "v": 1, "user_id": 42, "user_name": "Zoe \"Z\", Smith", "user_email": "zoe@example.com",
    "event_type": "purchase", "product_id": 7, "product_name": "Tea\tcup\n2",
    "product_category": "Kitchen", "product_price": 1250, "event_time": 1706702400123456,
    "source": "gen-0123456789abcdef", "partition": 3, "seq": 17, "published_at": 1706702400200000,
}
HEARTBEAT = {"v": 1, "source": "gen-0123456789abcdef", "partition": 3, "seq": 17,
             "published_at": 1706702400200000}
REPAIR = {"v": 1, "id": 9, "source": "gen-0123456789abcdef", "partition": 3, "from": 5, "to": 9}


def arr(d):
    """An event map as the array form: its values in the order of EVENT's
    keys (v first, then the fields in field order); keys not in EVENT go
    after them, in their order."""
    return [d[k] for k in EVENT if k in d] + [v for k, v in d.items() if k not in EVENT]


def with_(d, **kw):
    e = dict(d)
    for k, v in kw.items():
        if v is KeyError:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def wire():
    return {
        "event": mp(EVENT),
        "event_unicode": mp(with_(EVENT, user_name="é漢字😀", product_category="", event_type="view")),
        "event_extra_key": mp(with_(EVENT, later_field=[1, "x", None])),
        "event_bad_utf8": mp(with_(EVENT, user_name=b"\xff\xfe")),
        "event_missing_seq": mp(with_(EVENT, seq=KeyError)),
        "event_version_2": mp(with_(EVENT, v=2)),
        "event_negative": mp(with_(EVENT, partition=-1, product_price=-99999999999, event_time=-(2**63))),
        "event_truncated": mp(EVENT)[:40],
        "array_event": mp(arr(EVENT)),
        "array_extra_elements": mp(arr(with_(EVENT, later_field=[1, "x", None]))),
        "array_missing_tail": mp(arr(with_(EVENT, published_at=KeyError))),
        "array_version_2": mp(arr(with_(EVENT, v=2))),
        "array_truncated": mp(arr(EVENT))[:30],
        "heartbeat": mp(HEARTBEAT),
        "repair": mp(REPAIR),
        "repair_end": mp(with_(REPAIR, sent=5, found_source=True)),
        "repair_backwards": mp(with_(REPAIR, **{"from": 9, "to": 5})),
        "body_three_events": mp(EVENT) + mp(with_(EVENT, seq=18)) + mp(with_(EVENT, seq=19, user_name="")),
        "body_bad_map_between": mp(EVENT) + mp(with_(EVENT, seq=KeyError)) + mp(with_(EVENT, seq=19)),
        "body_broken_middle": mp(EVENT) + b"\xdb\xff\xff\xff\xff" + mp(with_(EVENT, seq=19)),
        "body_both_forms": mp(arr(EVENT)) + mp(with_(EVENT, seq=18)) + mp(arr(with_(EVENT, seq=19))),
        "huge_map_header": b"\xdf\xff\xff\xff\xff\xa1v\x01",
        "nested_arrays": b"\x91" * 40 + b"\x01",
        "empty": b"",
    }


def bus():
    """Bodies as publishers send them, and the tricks a forger would try."""
    return {
        "event": mp(EVENT),
        "array_event": mp(arr(EVENT)),
        "body_three_events": mp(EVENT) + mp(with_(EVENT, seq=18)) + mp(with_(EVENT, seq=19, user_name="")),
        "body_both_forms": mp(arr(EVENT)) + mp(with_(EVENT, seq=18)),
        "heartbeat": mp(HEARTBEAT),
        "event_cut_short": mp(EVENT)[:-1],
        "array_cut_before_source": mp(arr(EVENT)[:10]),
        "array_source_not_text": mp(arr(with_(EVENT, source=7))),
        "source_twice": b"\x82" + mp("source") + mp("gen-a") + mp("source") + mp("gen-b"),
        "source_not_text": mp(with_(EVENT, source=7)),
        "no_source": mp(with_(EVENT, source=KeyError)),
        "source_nested": mp(with_(EVENT, source=KeyError, extra={"source": "gen-x"})),
        "name_not_text": mp(with_(EVENT, user_name=5, user_email=b"")),
        "long_name": mp(with_(EVENT, user_name="x" * 200)),
        "not_an_event": mp(b"\x91\x01" * 2),
        "empty": b"",
    }


# ---- CSV files: byte 0 picks the record limit (low 4 bits) and read size (high 4 bits) ----

OLD = b"user_id,user_name,user_email,event_type,product_id,product_name,product_category,product_price,event_time"
ARCHIVE = OLD + b",source,partition,seq"


def csv():
    rows = (
        b'1,Zoe,zoe@example.com,view,7,Tea cup,Kitchen,12.50,2024-01-31 12:00:00,gen-1,0,1\n'
        b'2,"Smith, Jo","a""b@example.com",purchase,8,"two\nlines",x,-0.5,2024-01-31T12:00:00.5Z,gen-1,3,2\r\n'
        b'3,\xc3\xa9,e,view,9,p,c,120,2024-02-29 23:59:59.123456+02:00,gen-1,1023,3\n'
    )
    return {
        # limit 4096, whole file in one read
        "archive": bytes([0x0F]) + ARCHIVE + b"\n" + rows,
        # limit 1024, reads of 3 bytes
        "archive_small_reads": bytes([0x3D]) + ARCHIVE + b"\r\n" + rows,
        "old_format": bytes([0x0F]) + OLD + b"\n" + b"5,Al,al@x,purchase,1,P,C,0.01,2023-12-31 23:59:59\n\n\n",
        "reordered_header": bytes([0x0B]) + b"\xef\xbb\xbf event_time , product_price,product_category,"
        b"product_name,product_id,event_type,user_email,user_name,user_id,extra\n"
        b"2024-01-01 00:00:00,1,c,n,1,view,e,u,1,ignored\n",
        "too_long_line": bytes([0x16]) + OLD + b"\n" + b"1," + b"x" * 200 + b",e,view,1,p,c,1,2024-01-01 00:00:00\n"
        b"2,u,e,view,1,p,c,1,2024-01-01 00:00:00\n",
        "bad_rows": bytes([0x0F]) + ARCHIVE + b"\n"
        b'1,u,e,click,1,p,c,1,2024-01-01 00:00:00,s,0,1\n'
        b'x,u,e,view,1,p,c,1,2024-01-01 00:00:00,s,0,1\n'
        b'1,u,e,view,1,p,c,1.001,2024-01-01 00:00:00,s,0,1\n'
        b'1,u,e,view,1,p,c,1,2024-02-30 00:00:00,s,0,1\n'
        b'1,u,e,view,1,p,c,1,2024-01-01 00:00:00,s,1024,1\n'
        b'1,"u"x,e,view,1,p,c,1,2024-01-01 00:00:00,s,0,1\n'
        b'1,u,e,view\n'
        b'1,"never closed,e,view,1,p,c,1,2024-01-01 00:00:00,s,0,1\n',
        "duplicate_column": bytes([0x0F]) + OLD + b",user_id\n1,u,e,view,1,p,c,1,2024-01-01 00:00:00,1\n",
        "half_identity": bytes([0x0F]) + OLD + b",source\n1,u,e,view,1,p,c,1,2024-01-01 00:00:00,s\n",
        "empty_file": bytes([0x00]),
    }


# ---- Settings: pieces separated by NUL bytes (an argv; each piece also a value for every setting) ----

def config():
    def argv(*pieces):
        return b"\0".join(p.encode() for p in pieces)
    return {
        "valued_flags": argv("--bus-hwm", "5000", "--log-level=debug", "--partitions=64", "file.csv"),
        "options": argv("--count=3", "--follow", "--", "--not-a-flag", "-"),
        "help": argv("--help"),
        "endpoints": argv("--bus-subscribe-endpoint=ipc://", "tcp://:5", "inproc://x", "tcp://host:65536"),
        "numbers": argv("--max-message-bytes=99999999999999999999", "-12", "0x10", " 7", "3.5", "1e400",
                        "max", ""),
        "unknown": argv("--archive-dir=var/elsewhere", "-x", "--partitions"),
        "types": argv("view,purchase", "view,", ",", "purchase"),
        "long_text": argv("--postgres-password=" + "s" * 300, "d" * 1100),
    }


# ---- Dictionaries ----

def field_names():
    with open(os.path.join(ROOT, "proto/include/evpipe/event_fields.def")) as f:
        return re.findall(r"^EV_FIELD\((\w+),", f.read(), re.M)


def setting_flags():
    with open(os.path.join(ROOT, "services/common/src/config.c")) as f:
        return re.findall(r'\{"[A-Z_]+", "([a-z-]+)", EVP_SET_', f.read())


def dict_line(token):
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) for c in token) + '"'


def dicts():
    types = ["view", "purchase"]
    wire_tokens = [mp(n).decode("latin-1") for n in field_names() + ["v", "id", "from", "to", "sent", "found_source"]]
    csv_tokens = field_names() + types + [",", '"', '""', "\r\n", "\xef\xbb\xbf", "2024-02-29 23:59:59",
                                          ".123456", "+02:00", "Z", "T", "-0.5", "99999999.99", "2147483648"]
    config_tokens = ["--" + f + "=" for f in setting_flags()] + ["--help", "--count", "--follow", "--", "tcp://",
                                                                "ipc://", "inproc://", "max", "debug", "view,purchase"]
    return {"wire": wire_tokens, "csv": csv_tokens, "config": config_tokens, "bus": wire_tokens}


def main():
    os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
    for target, tokens in dicts().items():
        with open(os.path.join(HERE, "dict", target + ".dict"), "w") as f:
            f.write("# libFuzzer dictionary of the %s target, made by make_corpus.py\n" % target)
            f.write("".join(dict_line(t) + "\n" for t in dict.fromkeys(tokens)))
    for target, files in (("wire", wire()), ("csv", csv()), ("config", config()), ("bus", bus())):
        folder = os.path.join(HERE, "corpus", target)
        os.makedirs(folder, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
