"""Capture decoding for the pcap source: record readers, link/IP/transport decoding, tunnels,
and connection tracking.

Everything on the hot path works on whole blocks of packets at once (numpy over the raw record
bytes); only the walk over record headers, which is sequential by nature, is a Python loop.

- ``blocks``     — a bounded read buffer that carries partial records across reads, and
  reads the next block ahead in a thread;
- ``batch``      — ``PacketBatch``: one block's packets as arrays of offsets/lengths/times;
- ``pcapfile``   — classic pcap records;  ``pcapng`` — pcapng blocks;
- ``formats``    — format detection by magic and ``open_capture``;
- ``gather``     — big-endian integer gathers at arbitrary byte offsets;
- ``linklayer``  — link types (Ethernet/VLAN/MPLS, SLL, SLL2, raw, NULL/LOOP, NFLOG) → IP offset;
- ``decode``     — IPv4/IPv6/TCP/UDP/SCTP/ICMP fields and overlay decapsulation;
- ``conntrack``  — packets → connections, mergeable across blocks.
"""
