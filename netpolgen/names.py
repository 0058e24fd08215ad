"""Address → the DNS names it was seen for, and the flow table's ``dst_names`` column they make.

Shared by the sources that see DNS: Hubble's records (DNS answers and ``destination_names``) and
the answers in captures. Bounded: past ``max_addresses`` new addresses are no longer learned
(reading goes on), and ``max_names_per_address``, when set, caps the names kept for one address
(a shared CDN address can be asked for by many names).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd


class AddressNames:
    def __init__(self, max_addresses: int = 1_000_000, max_names_per_address: int | None = None) -> None:
        self.names: dict[str, set[str]] = {}
        self.max_addresses = max_addresses
        self.max_names_per_address = max_names_per_address

    def learn(self, address: str, name: str) -> None:
        """``address`` (canonical text) was given for ``name``."""
        known = self.names.get(address)
        if known is None:
            if len(self.names) >= self.max_addresses:
                return
            known = self.names[address] = set()
        if self.max_names_per_address is None or len(known) < self.max_names_per_address:
            known.add(name)

    def label(self, addresses: Iterable[str]) -> np.ndarray:
        """For each address, its names sorted and comma-joined ("" when none), as an object
        array: the ``dst_names`` column. Each distinct address is joined once."""
        values = np.asarray(addresses, dtype=object)
        if not self.names or not len(values):
            return np.full(len(values), "", dtype=object)
        codes, uniques = pd.factorize(values)
        text = np.array([",".join(sorted(self.names.get(a, ()))) for a in uniques], dtype=object)
        return text[codes]
