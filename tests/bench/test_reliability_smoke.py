"""The reliability benches (bench/RELIABILITY.md) in their short CI versions.

Each asserts what the long run asserts, on a shorter clock: the soak sees no growth of
wgpyd's RSS, fds or threads while roaming, rekeys and peer churn visibly happen.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import require

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")


def bench(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(BENCH, script), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.root
@pytest.mark.slow
def test_soak_smoke(wireguard_go, tmp_path):
    result = bench("soak.py", "--smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = glob.glob(os.path.join(tmp_path, "soak-*.json"))
    with open(path) as handle:
        data = json.load(handle)
    actions = {event["action"] for event in data["events"]}
    assert actions == {"roam-a", "roam-b", "rekey-a", "rekey-b", "churn"}, data["events"]
    assert data["verdict"]["wgpyd"]["flat"], data["verdict"]["wgpyd"]
    # traffic moved (the tx counter restarts whenever rekey-a re-adds the peer)
    assert max(sample["tx_bytes_a"] for sample in data["samples"]) > 1_000_000
    assert len(data["samples"]) >= 20


def test_fuzz_smoke(tmp_path):
    """Every target takes thousands of inputs without a crash (atheris if installed)."""
    result = bench("fuzz.py", "--smoke", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = glob.glob(os.path.join(tmp_path, "fuzz-*.json"))
    with open(path) as handle:
        results = json.load(handle)["results"]
    assert [r["target"] for r in results] == ["datagram", "uapi", "config", "quick"]
    for r in results:
        assert not r["crashed"] and r["inputs"] >= 1000, r
    datagram = results[0]["details"]
    assert datagram["delivered"] > 0 and datagram["drops"]["bad_inner_packet"] > 0, datagram


@pytest.mark.root
@pytest.mark.slow
def test_badnet_smoke(root_netns, tmp_path):
    """10 % loss + 10 % duplication + delay with reordering: TCP moves, no duplicate is
    delivered while wgpyd drops the duplicates as replays; a short blackhole heals."""
    require(shutil.which("nft") is not None, "needs nftables (`nft`)")
    require(shutil.which("iperf3") is not None, "needs iperf3")
    require(shutil.which("wg") is not None, "needs wg (apt-get install wireguard-tools)")
    result = bench("badnet.py", "--smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = glob.glob(os.path.join(tmp_path, "badnet-*.json"))
    with open(path) as handle:
        runs = {run["scenario"]: run for run in json.load(handle)["runs"]}
    combined, blackhole = runs["combined"], runs["blackhole"]
    assert combined["tcp"]["mbps"] > 0 and combined["duplicates_delivered"] == 0, combined
    assert combined["nft"]["dup"] > 0 and combined["nft"]["loss"] > 0, combined
    assert 0 < combined["wgpyd_drops"]["replayed"] <= combined["nft"]["dup"], combined
    assert combined["out_of_order_delivered"] > 0, combined
    assert blackhole["recovery_s"] is not None and blackhole["delivered_after"] > 0, blackhole
