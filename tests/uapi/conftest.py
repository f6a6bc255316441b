"""A DeviceHost without I/O around a real core Device, for the UAPI tests."""

from collections.abc import Callable
from typing import TypeVar

import pytest

from wgpy.core.device import Device

T = TypeVar("T")


class FakeHost:
    """Ports and marks are only remembered; `busy_port` is "in use" and `bad_mark` refused,
    as a real socket would refuse them. `call` runs the function at once and counts, then
    runs `after_call` (if set) with the count: where the data plane would run between the
    calls of a set or get made in turns."""

    busy_port = 4242
    bad_mark = 666

    def __init__(self) -> None:
        self.device = Device(wall_offset=1_700_000_000.0)
        self.port = 0
        self.mark = 0
        self.clock = 100.0
        self.calls = 0
        self.after_call: Callable[[int], None] | None = None
        self.shell_drops = {"udp_send_failed": 0}

    def listen_port(self) -> int:
        return self.port

    def set_listen_port(self, port: int) -> None:
        if port == self.busy_port:
            raise OSError(98, "Address already in use")
        self.port = port

    def fwmark(self) -> int:
        return self.mark

    def set_fwmark(self, mark: int) -> None:
        if mark == self.bad_mark:
            raise OSError(1, "Operation not permitted")
        self.mark = mark

    def now(self) -> float:
        return self.clock

    def call(self, fn: Callable[[], T]) -> T:
        self.calls += 1
        try:
            return fn()
        finally:
            if self.after_call is not None:
                self.after_call(self.calls)

    def io_drops(self) -> dict[str, int]:
        return self.shell_drops


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def make_host() -> type[FakeHost]:
    return FakeHost
