"""Shared test policy: environment-dependent tests skip with a reason, except under CI=true.

CI runs as root with every tool installed, so there a missing prerequisite is a failure: a
silently skipped interop test would let a broken build land.
"""

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip (or fail, under CI=true) the calling test when `condition` is false."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but prerequisite missing: {reason}", pytrace=False)
    pytest.skip(reason)


def have_root_netns() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, TUN)"
    if not os.path.exists("/dev/net/tun"):
        return False, "needs /dev/net/tun"
    if shutil.which("ip") is None:
        return False, "needs iproute2 (`ip`)"
    return True, ""


@pytest.fixture
def root_netns() -> None:
    """Require root, /dev/net/tun and iproute2."""
    ok, reason = have_root_netns()
    require(ok, reason)


@pytest.fixture
def wireguard_go(root_netns: None) -> str:
    """Require root plus the wireguard-go and wg binaries; returns wireguard-go's path."""
    path = shutil.which("wireguard-go")
    require(path is not None, "needs wireguard-go (apt-get install wireguard-go)")
    require(shutil.which("wg") is not None, "needs wg (apt-get install wireguard-tools)")
    assert path is not None
    return path
