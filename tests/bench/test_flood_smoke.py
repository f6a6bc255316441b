"""bench/flood.py end to end in its --smoke mode: a 5,000/s handshake flood for 2 s against
wgpyd and wireguard-go, and the tunnel through wgpyd must survive it.

No rate or timing is asserted (CI machines vary). What must hold: both victims were measured,
the attacker really sent, wgpyd screened the flood (its drop counters show it), pings through
wgpyd's tunnel kept coming back during the flood, its UAPI socket answered every time, a
restarted peer got a handshake through, and nothing is left behind.
"""

import glob
import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")


def leftovers(tag: str) -> list[str]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ours = {f"wgpyb-{role}{tag}" for role in "vlx"}
    found = [line.split()[0] for line in namespaces.splitlines() if line.split()[0] in ours]
    found += [name for name in os.listdir("/var/run/wireguard") if name.startswith(f"wb{tag}")]
    return found


@pytest.mark.root
@pytest.mark.slow
def test_flood_smoke(wireguard_go, tmp_path):
    process = subprocess.Popen([sys.executable, os.path.join(BENCH, "flood.py"), "--smoke",
                                "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stdout + stderr
    assert "| wgpyd | 5,000/s |" in stdout and "| wireguard-go | 5,000/s |" in stdout
    (path,) = glob.glob(os.path.join(tmp_path, "*-flood.json"))
    with open(path) as handle:
        runs = json.load(handle)["runs"]
    attacked = {run["victim"]: run for run in runs if run["attack"] is not None}
    assert set(attacked) == {"wgpyd", "wireguard-go"}
    assert all(run["status"] == "ok" and run["attack_sent"] > 0 for run in attacked.values())
    wgpyd = attacked["wgpyd"]
    screened = sum(wgpyd["victim_drops"].get(reason, 0) for reason in
                   ("handshake_failed", "cookie_needed", "cookie_ratelimited"))
    assert screened > 0, wgpyd["victim_drops"]
    assert wgpyd["pings_received"] > 0
    assert wgpyd["uapi_failures"] == 0 and wgpyd["uapi_max_ms"] is not None
    assert wgpyd["restart_handshake_s"] is not None
    assert leftovers(str(process.pid)) == []
