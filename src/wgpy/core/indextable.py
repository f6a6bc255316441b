"""Receiver indices: random, unique 32-bit numbers that name a handshake or a keypair.

Messages carry the index the receiver chose, so lookup is a dict access. Random rather than
sequential indices keep a network observer from counting sessions.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class IndexTable(Generic[T]):
    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes
        # Public for the data path, which reads it directly; mutate only through methods.
        self.entries: dict[int, T] = {}

    def allocate(self, value: T) -> int:
        while True:
            index = int.from_bytes(self._random(4), "little")
            if index not in self.entries:
                self.entries[index] = value
                return index

    def replace(self, index: int, value: T) -> None:
        """Re-point an existing index (a handshake's index becomes its keypair's)."""
        self.entries[index] = value

    def release(self, index: int) -> None:
        self.entries.pop(index, None)

    def get(self, index: int) -> T | None:
        return self.entries.get(index)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, index: int) -> bool:
        return index in self.entries
