"""Write a large, deterministic capture of mixed traffic, fast (numpy byte templates, no scapy).

    python benchmarks/gen_capture.py --packets 1000000 --format pcap --out benchmarks/data/x.pcap

Traffic: a few hundred hosts; TCP connections with a full handshake (SYN, SYN-ACK, ACK), data
both ways and a FIN, to a handful of service ports; UDP DNS request/response pairs; about one
connection in five carries an 802.1Q tag.

DNS (the default, ``--dns``): the UDP pairs are real DNS messages, about 3.5% of the packets, as on
a node where every connection to a Service or an outside name is preceded by a lookup. The names
are many (``--dns-names``, 20,000 by default: cluster Services and outside names) and repeat a lot
(seven lookups in ten go to the 200 most popular names); answers are A or AAAA records, one to
three addresses, outside names through a CNAME. Each lookup has its own transaction ID.
``--no-dns`` writes zero-filled UDP payloads instead (no DNS answer at all). Connections overlap in time, so packets of different
connections interleave. Checksums are left zero (nothing here verifies them). The file is
written in slices of at most ``--slice`` packets, so memory stays flat for multi-GB outputs.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time

import numpy as np

SERVICE_PORTS = np.array([80, 443, 8080, 5432, 6379, 9090, 3306], dtype=np.int64)
T0_NS = 1_700_000_000 * 10**9


class DnsBook:
    """Query and response messages for ``names`` DNS names, as one byte array with offsets."""

    def __init__(self, names: int, seed: int = 7) -> None:
        rng = np.random.default_rng([seed, names])
        queries, responses = [], []
        for i in range(names):
            external = i % 3 == 2
            if external:
                qname = f"api{i}.example{i % 97}.com"
            else:
                qname = f"svc{i}.ns{i % 41}.svc.cluster.local"
            qtype = 28 if i % 5 == 4 else 1
            question = _wire_name(qname) + struct.pack("!HH", qtype, 1)
            queries.append(struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + question)
            answers = []
            owner = b"\xc0\x0c"  # a pointer to the question's name
            if external:  # the name is an alias of a CDN edge
                target = _wire_name(f"edge{i % 499}.cdn{i % 7}.net")
                answers.append(owner + struct.pack("!HHIH", 5, 1, 300, len(target)) + target)
                owner = struct.pack("!H", 0xC000 | (12 + len(question) + 12))  # the CNAME's target
            for k in range(int(rng.integers(1, 4))):
                if qtype == 28:
                    rdata = bytes.fromhex("20010db8") + struct.pack("!IQ", i, k + 1)
                elif external:
                    rdata = bytes([203, 0, 113, (i * 3 + k) % 254 + 1])
                else:
                    rdata = bytes([10, 96, (i >> 8) & 0xFF, (i + k) & 0xFF])
                answers.append(owner + struct.pack("!HHIH", qtype, 1, 30, len(rdata)) + rdata)
            header = struct.pack("!HHHHHH", 0, 0x8180, 1, len(answers), 0, 0)
            responses.append(header + question + b"".join(answers))
        blobs = queries + responses
        self.lengths = np.array([len(b) for b in blobs], dtype=np.int64)
        self.offsets = np.cumsum(self.lengths) - self.lengths
        self.data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        self.names = names

    def pick(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Names for ``n`` lookups: popular ones often, the long tail now and then."""
        popular = rng.integers(0, min(200, self.names), n)
        tail = rng.integers(0, self.names, n)
        return np.where(rng.random(n) < 0.7, popular, tail)


def _wire_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def _connections(rng: np.random.Generator, n_packets: int, hosts: int, t_start: int, dns: DnsBook | None = None):
    """Per-packet arrays for connections totalling about ``n_packets`` packets."""
    mean_pkts = 10
    n_conn = max(1, n_packets // mean_pkts)
    is_udp = rng.random(n_conn) < 0.15
    # Packets per connection: TCP 5..24 (handshake, data, FIN); UDP one or two pairs.
    npk = np.where(is_udp, 2 * rng.integers(1, 3, n_conn), rng.integers(5, 25, n_conn))
    client = rng.integers(0, hosts, n_conn)
    server = (client + 1 + rng.integers(0, hosts - 1, n_conn)) % hosts
    cport = rng.integers(32768, 61000, n_conn)
    sport = np.where(is_udp, 53, SERVICE_PORTS[rng.integers(0, len(SERVICE_PORTS), n_conn)])
    vlan = rng.random(n_conn) < 0.2
    start = t_start + rng.integers(0, 10**9 * max(1, n_conn // 2000), n_conn)

    conn = np.repeat(np.arange(n_conn), npk)
    first = np.repeat(np.cumsum(npk) - npk, npk)
    k = np.arange(len(conn)) - first  # packet number within its connection
    last = k == npk[conn] - 1
    udp = is_udp[conn]
    # Direction: handshake c,s,c; then alternate; UDP request/response.
    to_server = np.where(udp, k % 2 == 0, np.where(k < 3, k != 1, k % 2 == 1))
    flags = np.select([k == 0, k == 1, k == 2, last], [0x02, 0x12, 0x10, 0x11], 0x18).astype(np.uint8)
    # Data segments: pure ACKs, small messages and full-size segments.
    size = np.select([rng.random(len(conn)) < 0.4, rng.random(len(conn)) < 0.5], [0, rng.integers(1, 200, len(conn))],
                     rng.integers(1000, 1449, len(conn)))
    payload = np.where(udp, np.where(to_server, 40, 120), np.where(k < 3, 0, size))
    payload = np.where(last & ~udp, 0, payload)
    # DNS: each lookup (a request and its response) is one message pair of the book, with a
    # transaction ID of its own; blob indexes the book (queries first, then responses).
    blob = np.full(len(conn), -1, dtype=np.int64)
    txid = np.zeros(len(conn), dtype=np.int64)
    if dns is not None:
        lookup = conn * 2 + np.minimum(k // 2, 1)  # a UDP connection of 4 packets makes two lookups
        name = dns.pick(rng, 2 * n_conn)[lookup]
        blob = np.where(udp, name + np.where(to_server, 0, dns.names), -1)
        txid = rng.integers(0, 1 << 16, 2 * n_conn)[lookup]
        payload = np.where(udp, dns.lengths[np.maximum(blob, 0)], payload)
    gaps = np.cumsum(rng.integers(50_000, 2_000_000, len(conn)))
    ts = start[conn] + gaps - gaps[first]  # increasing within each connection
    src_host = np.where(to_server, client[conn], server[conn])
    dst_host = np.where(to_server, server[conn], client[conn])
    src_port = np.where(to_server, cport[conn], sport[conn])
    dst_port = np.where(to_server, sport[conn], cport[conn])
    order = np.argsort(ts, kind="stable")
    return dict(ts=ts[order], udp=udp[order], vlan=vlan[conn][order], flags=flags[order],
                payload=payload[order].astype(np.int64), src=_ip(src_host[order]), dst=_ip(dst_host[order]),
                sport=src_port[order], dport=dst_port[order], blob=blob[order], txid=txid[order])


def _ip(host: np.ndarray) -> np.ndarray:
    """Host numbers → IPv4 addresses in 10.244.0.0/16 (pod-network-like)."""
    return (10 << 24) | (244 << 16) | (host // 250 << 8) | (host % 250 + 1)


def _put(out: np.ndarray, at: np.ndarray, value: np.ndarray | int, width: int) -> None:
    """Write big-endian integers of ``width`` bytes at byte offsets ``at``."""
    v = np.asarray(value, dtype=np.int64)
    for i in range(width):
        out[at + i] = (v >> (8 * (width - 1 - i))) & 0xFF


def _frames(p: dict, dns: DnsBook | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ethernet frames of all packets, concatenated: (bytes, frame offsets, frame lengths)."""
    n = len(p["ts"])
    tag = np.where(p["vlan"], 4, 0)
    l4len = np.where(p["udp"], 8, 20)
    iplen = 20 + l4len + p["payload"]
    flen = 14 + tag + iplen
    off = np.cumsum(flen) - flen
    out = np.zeros(int(flen.sum()), dtype=np.uint8)
    _put(out, off, 0x020000000002, 6)
    _put(out, off + 6, 0x020000000001, 6)
    v = np.flatnonzero(p["vlan"])
    _put(out, off[v] + 12, 0x8100, 2)
    _put(out, off[v] + 14, 100 + (p["dport"][v] % 7), 2)
    ip = off + 12 + tag
    _put(out, ip, 0x0800, 2)
    ip += 2
    out[ip] = 0x45
    _put(out, ip + 2, iplen, 2)
    _put(out, ip + 4, np.arange(n) & 0xFFFF, 2)
    out[ip + 8] = 64
    out[ip + 9] = np.where(p["udp"], 17, 6)
    _put(out, ip + 12, p["src"], 4)
    _put(out, ip + 16, p["dst"], 4)
    l4 = ip + 20
    _put(out, l4, p["sport"], 2)
    _put(out, l4 + 2, p["dport"], 2)
    u = np.flatnonzero(p["udp"])
    _put(out, l4[u] + 4, l4len[u] + p["payload"][u], 2)
    t = np.flatnonzero(~p["udp"])
    _put(out, l4[t] + 4, np.arange(len(t)) * 1000, 4)
    out[l4[t] + 12] = 0x50
    out[l4[t] + 13] = p["flags"][t]
    _put(out, l4[t] + 14, 64240, 2)
    if dns is not None:
        d = np.flatnonzero(p["blob"] >= 0)
        if len(d):
            blob = p["blob"][d]
            lens = dns.lengths[blob]
            within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
            out[np.repeat(l4[d] + 8, lens) + within] = dns.data[np.repeat(dns.offsets[blob], lens) + within]
            _put(out, l4[d] + 8, p["txid"][d], 2)
    return out, off, flen


def _records(frames: np.ndarray, off: np.ndarray, flen: np.ndarray, ts: np.ndarray, fmt: str) -> bytes:
    """Frames wrapped in pcap record headers or pcapng EPBs (little-endian)."""
    if fmt == "pcap":
        hdr = 16
        rlen = hdr + flen
    else:
        hdr = 28
        rlen = hdr + ((flen + 3) & ~3) + 4
    roff = np.cumsum(rlen) - rlen
    out = np.zeros(int(rlen.sum()), dtype=np.uint8)
    le = lambda at, value: _put_le(out, at, value)  # noqa: E731
    if fmt == "pcap":
        le(roff, ts // 10**9)
        le(roff + 4, (ts % 10**9) // 1000)
        le(roff + 8, flen)
        le(roff + 12, flen)
    else:
        micros = ts // 1000
        le(roff, 6)
        le(roff + 4, rlen)
        le(roff + 8, 0)
        le(roff + 12, micros >> 32)
        le(roff + 16, micros & 0xFFFFFFFF)
        le(roff + 20, flen)
        le(roff + 24, flen)
        le(roff + rlen - 4, rlen)
    # Frames go behind their headers, in order: mark the frame bytes' places (a running sum of
    # +1 at each frame start and -1 at its end) and fill them in one masked assignment.
    edge = np.zeros(len(out) + 1, dtype=np.int8)
    np.add.at(edge, roff + hdr, 1)
    np.add.at(edge, roff + hdr + flen, -1)
    out[np.cumsum(edge[:-1], dtype=np.int8) > 0] = frames
    return out.tobytes()


def _put_le(out: np.ndarray, at: np.ndarray, value) -> None:
    v = np.asarray(value, dtype=np.int64)
    for i in range(4):
        out[at + i] = (v >> (8 * i)) & 0xFF


def file_header(fmt: str) -> bytes:
    if fmt == "pcap":
        return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 262144) + struct.pack("<I", 20)
    return shb + idb


def generate(out_path: str, packets: int, fmt: str, seed: int = 1, hosts: int = 300, slice_packets: int = 200_000,
             dns: bool = True, dns_names: int = 20_000) -> int:
    """Write the capture; returns the number of packets written."""
    book = DnsBook(dns_names) if dns else None
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    written = 0
    with open(out_path + ".tmp", "wb") as f:
        f.write(file_header(fmt))
        part = 0
        while written < packets:
            rng = np.random.default_rng([seed, part])
            want = min(slice_packets, packets - written)
            p = _connections(rng, want, hosts, T0_NS + part * 3600 * 10**9, book)
            take = min(want, len(p["ts"]))
            p = {k: v[:take] for k, v in p.items()}
            frames, off, flen = _frames(p, book)
            f.write(_records(frames, off, flen, p["ts"], fmt))
            written += take
            part += 1
    os.replace(out_path + ".tmp", out_path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--format", choices=["pcap", "pcapng"], default="pcap")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hosts", type=int, default=300)
    ap.add_argument("--dns", action=argparse.BooleanOptionalAction, default=True,
                    help="UDP pairs are real DNS lookups (default); --no-dns: zero-filled payloads")
    ap.add_argument("--dns-names", type=int, default=20_000, help="distinct names looked up")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    n = generate(args.out, args.packets, args.format, args.seed, args.hosts, dns=args.dns, dns_names=args.dns_names)
    dt = time.perf_counter() - t
    size = os.path.getsize(args.out)
    print(f"wrote {n} packets, {size / 1e6:.1f} MB, to {args.out} in {dt:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
