"""Every benchmark runs end to end in its --smoke mode and leaves nothing behind.

No timing is asserted (CI machines vary); what must hold is that each bench exits 0, prints
its table, writes a JSON in which every configuration actually ran, and cleans up its
namespaces, sockets and daemons, also when interrupted.
"""

import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")
CONFIG_LABELS = ("raw veth", "wireguard-go ↔ wireguard-go", "wgpyd ↔ wgpyd",
                 "wgpyd → wireguard-go", "wireguard-go → wgpyd")


def bench(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(BENCH, script), *args],
                          capture_output=True, text=True, timeout=timeout)


def smoke_run(script: str, out, timeout: float) -> tuple[str, str]:
    """`bench/SCRIPT --smoke --out OUT`, which must exit 0: its PID (the tag in the names of
    what it makes, for leftovers) and its stdout."""
    process = subprocess.Popen([sys.executable, os.path.join(BENCH, script), "--smoke",
                                "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stdout + stderr
    return str(process.pid), stdout


def only_json(directory) -> dict:
    (path,) = glob.glob(os.path.join(directory, "*.json"))
    with open(path) as handle:
        return json.load(handle)


def leftovers(tag: str) -> list[str]:
    """Namespaces, UAPI sockets and processes that carry a bench run's PID tag."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ours = {f"wgpyb-a{tag}", f"wgpyb-b{tag}", f"wgpyb-r{tag}"}
    found = [line.split()[0] for line in namespaces.splitlines() if line.split()[0] in ours]
    found += [name for name in os.listdir("/var/run/wireguard") if name.startswith(f"wb{tag}")]
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(f"wb{tag}".encode()) for arg in argv):
            found.append(f"process {pid}: {b' '.join(argv).decode(errors='replace')}")
    return found


def test_handshakes_smoke(tmp_path):
    result = bench("bench_handshakes.py", "--smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "handshakes completed" in result.stdout
    summary = only_json(tmp_path)["summary"]
    assert set(summary) == {"handshake", "bad_mac1", "cookie_reply", "flood_finished",
                            "flood_refused"}
    assert all(entry["per_second"] > 0 for entry in summary.values())


def test_flood_path_smoke(tmp_path):
    """The flood's datagrams take the refusal path (the bench exits 1 otherwise)."""
    result = bench("flood_path.py", "--smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = only_json(tmp_path)
    assert data["median"] > 0 and data["drops"]["cookie_ratelimited"] >= 2000


@pytest.mark.root
def test_scale_smoke_grows_linearly(wireguard_go, tmp_path):
    """bench/scale.py --smoke: every wgpy path at 500 and 2 000 peers, and the bench itself
    fails when one is missing or takes more than 6x the time at 4x the peers."""
    spec = importlib.util.spec_from_file_location("scale", os.path.join(BENCH, "scale.py"))
    assert spec is not None and spec.loader is not None
    sys.path.insert(0, BENCH)  # scale.py imports its neighbours
    try:
        scale = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(scale)
    finally:
        sys.path.remove(BENCH)
    result = bench("scale.py", "--smoke", "--out", str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    data = only_json(tmp_path)
    assert sorted(data["times"]) == ["2000", "500"]
    for size in ("500", "2000"):
        assert set(data["times"][size]["wgpy"]) >= set(scale.PATHS)
    assert set(data["growth"]) == {f"{path} 500->2000" for path in scale.PATHS}
    assert all(ratio <= 6 for ratio in data["growth"].values()), data["growth"]
    assert data["times"]["2000"]["wgpy"]["rss MiB"] > 0


@pytest.mark.root
@pytest.mark.slow
def test_throughput_smoke(wireguard_go, tmp_path):
    tag, stdout = smoke_run("run.py", tmp_path, timeout=180)
    for label in CONFIG_LABELS:
        assert f"| {label} " in stdout
    data = only_json(tmp_path)
    assert {run["config"] for run in data["runs"]} == {
        "raw", "go-go", "wgpyd-wgpyd", "wgpyd-go", "go-wgpyd"}
    for run in data["runs"]:
        assert run["status"] == "ok", run
        tunneled = run["config"] != "raw"
        assert (run["metrics"]["cpu_a_s_per_gb"] is not None) == tunneled, run
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert bool(glob.glob(os.path.join(tmp_path, "*.png"))) == has_matplotlib
    assert leftovers(tag) == []


@pytest.mark.root
def test_throughput_interrupted_cleans_up(wireguard_go, tmp_path):
    process = subprocess.Popen([sys.executable, os.path.join(BENCH, "run.py"), "--only",
                                "go-go", "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tag = str(process.pid)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(f"/var/run/wireguard/wb{tag}b.sock"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "daemons never came up"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "cleaned up" in stderr
    assert leftovers(tag) == []
    assert not glob.glob(os.path.join(tmp_path, "*.json"))


@pytest.mark.root
@pytest.mark.slow
def test_narrow_path_smoke(wireguard_go, tmp_path):
    """Every smoke path (local, routed behind ICMP, narrowing mid-transfer) carries TCP for
    every configuration, and wgpyd lost nothing to refused sends."""
    tag, stdout = smoke_run("narrow.py", tmp_path, timeout=180)
    data = only_json(tmp_path)
    paths = [path["name"] for path in data["paths"]]
    configs = [config["name"] for config in data["configs"]]
    assert paths == ["v4-local-1400", "v6-routed-1280", "v4-narrows-1400"]
    assert sorted((run["path"], run["config"]) for run in data["runs"]) == sorted(
        (path, config) for path in paths for config in configs)
    for run in data["runs"]:
        assert run["status"] == "ok" and run["mbps"] > 1, run
        assert run["udp_send_failed"] == 0, run
    assert "| IPv6, router's far link 1280 (Packet Too Big)" in stdout
    assert leftovers(tag) == []


@pytest.mark.root
def test_idle_smoke(wireguard_go, tmp_path):
    """Both daemons measured in every scenario (20 real peers with keepalives in the smoke),
    and the issue-18 bar, a count rather than a time: an idle wgpyd with no peer or with one
    quiet peer wakes at most 10 times a second (preemptions by other load aside)."""
    tag, stdout = smoke_run("idle.py", tmp_path, timeout=240)
    data = only_json(tmp_path)
    assert len(data["runs"]) == 10 and all(run["status"] == "ok" for run in data["runs"])
    for run in data["runs"]:
        if run["daemon"] == "wgpyd" and run["scenario"] in ("no peers", "one peer, no traffic"):
            assert run["voluntary_per_s"] <= 10, run  # times it slept, so was woken
    assert "| 20 peers, keepalive 25 |" in stdout
    assert leftovers(tag) == []
