"""Where a benchmark ran and where its results go: recorded in every JSON so numbers from
different machines or builds are never compared by accident."""

import datetime
import json
import os
import platform
import shutil
import subprocess

import wgpy

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")


def _first_line(*argv: str) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else None


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    result = subprocess.run(["git", "-C", BENCH_DIR, "describe", "--always", "--dirty"],
                            capture_output=True, text=True, timeout=10)
    return result.stdout.strip() or None if result.returncode == 0 else None


def describe() -> dict:
    """Machine and software versions."""
    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "wgpy": wgpy.__version__,
        "git": _git_commit(),
        "wireguard-go": _first_line("wireguard-go", "--version"),
        "wg": _first_line("wg", "--version"),
        "iperf3": _first_line("iperf3", "--version"),
    }


def timestamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_json(data: dict, directory: str, name: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    return path
