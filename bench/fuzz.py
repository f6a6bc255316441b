#!/usr/bin/env python3
"""`python3 bench/fuzz.py [TARGET…] --inputs N`: fuzz wgpy's input surfaces, zero crashes wanted.

Targets (bench/fuzz_targets.py says what each feeds and what counts as a crash): `datagram`
(the core's Device.decrypt on a live in-memory pair), `uapi` (a `set=1` request through the
parser and onto a device), `config` (wg files and `wg set` words), `quick` (wg-quick files).

Engines: `atheris` (coverage-guided, libFuzzer inside CPython; `pip install atheris`) and
`mutator` (this file: random byte-level mutations of the seeds and a dictionary of hostile
tokens, no coverage feedback). `auto` takes atheris when it imports. Each target runs in its own
process (libFuzzer exits the process when done); a crash leaves its input as
`OUT/crash-TARGET-…` and the traceback in `OUT/fuzz-TARGET.log`, and makes the exit status 1.
"""

import argparse
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TARGET_NAMES = ("datagram", "uapi", "config", "quick")
SUMMARY_EVERY = 10_000
# Tokens that have broken parsers elsewhere: huge and non-ASCII numbers, separators, names.
DICTIONARY = ("9" * 4400, "\u00b2", "\uff11\uff12\uff13", "\u0663", "0x", "0x" + "f" * 40,
              "-1", "+1", "65536",
              "4294967296", "18446744073709551616", "=", "\n", "\r\n", "\0", "#", ",", "/",
              ":", "[", "]", "%", "[Interface]", "[Peer]", "PublicKey", "AllowedIPs",
              "Endpoint", "ListenPort", "FwMark", "PersistentKeepalive", "PresharedKey",
              "PrivateKey", "Address", "DNS", "MTU", "Table", "SaveConfig", "PostUp", "off",
              "true", "::", "::ffff:", "255.255.255.255", "/128", "/33", "public_key=",
              "allowed_ip=", "endpoint=", "listen_port=", "fwmark=", "remove=true",
              "update_only=true", "replace_peers=true", "protocol_version=", "peer",
              "allowed-ips", "endpoint", "private-key", "preshared-key", "listen-port")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/fuzz.py", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"default: all of {', '.join(TARGET_NAMES)}")
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop each target after this long (whichever comes first)")
    parser.add_argument("--engine", choices=("auto", "atheris", "mutator"), default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="1 s per target (for CI)")
    parser.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.targets = args.targets or list(TARGET_NAMES)
    unknown = sorted(set(args.targets) - set(TARGET_NAMES))
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)}; choose from {TARGET_NAMES}")
    if args.smoke:
        args.seconds = 1.0
    if args.engine == "auto":
        args.engine = "atheris" if importlib.util.find_spec("atheris") else "mutator"
    return args


# ---------------------------------------------------------------------- engines (in a worker)


def mutate(data: bytes, rng: random.Random, seeds: list[bytes], max_len: int) -> bytes:
    """1-6 random edits: bit flips, random or dictionary bytes inserted or overwritten,
    ranges deleted or duplicated, a splice with another seed."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.randrange(7)
        position = rng.randint(0, len(out))
        if choice == 0 and out:
            out[min(position, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif choice == 1:
            out[position:position] = rng.randbytes(rng.randint(1, 8))
        elif choice == 2:
            out[position:position] = rng.choice(DICTIONARY).encode()
        elif choice == 3 and out:
            token = rng.choice(DICTIONARY).encode()
            out[position:position + len(token)] = token
        elif choice == 4:
            del out[position:position + rng.randint(1, 32)]
        elif choice == 5:
            out[position:position] = out[position:position + rng.randint(1, 64)]
        else:
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            out = out[:position] + other[cut:]
    return bytes(out[:max_len])


def run_mutator(target, inputs: int, seconds: float | None, seed: int, crash_prefix: str,
                summary_path: str) -> int:
    rng = random.Random(seed)
    seeds = target.seeds()
    deadline = time.monotonic() + seconds if seconds else float("inf")
    done = 0
    for done in range(1, inputs + 1):
        if rng.random() < 0.05:
            data = rng.randbytes(rng.randint(0, 256))
        else:
            data = mutate(rng.choice(seeds), rng, seeds, target.max_len)
        try:
            target(data)
        except Exception:
            path = f"{crash_prefix}{done}"
            with open(path, "wb") as handle:
                handle.write(data)
            traceback.print_exc()
            print(f"crash: input saved to {path}", file=sys.stderr)
            write_summary(summary_path, target, done, crashed=True)
            return 1
        if done % SUMMARY_EVERY == 0:
            write_summary(summary_path, target, done)
            if time.monotonic() > deadline:
                break
        elif done % 100 == 0 and time.monotonic() > deadline:
            break
    write_summary(summary_path, target, done)
    return 0


def run_atheris(name: str, inputs: int, seconds: float | None, seed: int,
                crash_prefix: str, summary_path: str, workdir: str) -> None:
    """libFuzzer over the target; wgpy's modules are instrumented for coverage."""
    import atheris

    with atheris.instrument_imports(include=["wgpy"]):
        import fuzz_targets
    fuzz_targets.numeric_hosts_only()
    target = fuzz_targets.TARGETS[name]()
    corpus = os.path.join(workdir, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for i, data in enumerate(target.seeds()):
        with open(os.path.join(corpus, f"seed{i}"), "wb") as handle:
            handle.write(data)
    dictionary = os.path.join(workdir, "dict")
    with open(dictionary, "w") as handle:
        for token in DICTIONARY:
            escaped = "".join(f"\\x{b:02x}" for b in token.encode())
            handle.write(f'"{escaped}"\n')
    count = 0

    def test_one(data: bytes) -> None:
        nonlocal count
        count += 1
        try:
            target(data)
        except Exception:
            write_summary(summary_path, target, count, crashed=True)
            raise
        if count % SUMMARY_EVERY == 0:
            write_summary(summary_path, target, count)

    libfuzzer_args = [sys.argv[0], corpus, f"-runs={inputs}", f"-seed={seed}",
                      f"-max_len={target.max_len}", f"-dict={dictionary}", "-timeout=30",
                      "-rss_limit_mb=3072", f"-artifact_prefix={crash_prefix}",
                      "-print_final_stats=1"]
    if seconds:
        libfuzzer_args.append(f"-max_total_time={max(1, round(seconds))}")
    atheris.Setup(libfuzzer_args, test_one)
    atheris.Fuzz()


def write_summary(path: str, target, count: int, crashed: bool = False) -> None:
    with open(path, "w") as handle:
        json.dump({"inputs": count, "crashed": crashed, **target.summary()}, handle)


def worker(args: argparse.Namespace) -> int:
    """One target in this process (the parent reads its summary file and log)."""
    sys.path.insert(0, BENCH_DIR)
    name = args.worker
    crash_prefix = os.path.join(args.out, f"crash-{name}-")
    summary_path = os.path.join(args.out, f"fuzz-{name}.summary")
    with tempfile.TemporaryDirectory(prefix="wgpy-fuzz-") as workdir:
        if args.engine == "atheris":
            run_atheris(name, args.inputs, args.seconds, args.seed, crash_prefix,
                        summary_path, workdir)
            return 0  # not reached: libFuzzer exits the process
        import fuzz_targets

        fuzz_targets.numeric_hosts_only()
        return run_mutator(fuzz_targets.TARGETS[name](), args.inputs, args.seconds, args.seed,
                           crash_prefix, summary_path)


# ---------------------------------------------------------------------- the command


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_COVERAGE = re.compile(r"DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)")


def run_target(name: str, args: argparse.Namespace) -> dict:
    log_path = os.path.join(args.out, f"fuzz-{name}.log")
    summary_path = os.path.join(args.out, f"fuzz-{name}.summary")
    if os.path.exists(summary_path):
        os.unlink(summary_path)
    argv = [sys.executable, os.path.abspath(__file__), "--worker", name, "--engine",
            args.engine, "--inputs", str(args.inputs), "--seed", str(args.seed),
            "--out", args.out]
    if args.seconds:
        argv += ["--seconds", str(args.seconds)]
    start = time.monotonic()
    with open(log_path, "w") as log:
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - start
    summary: dict = {}
    if os.path.exists(summary_path):
        with open(summary_path) as handle:
            summary = json.load(handle)
    with open(log_path, errors="replace") as handle:
        log_text = handle.read()
    done = _DONE.search(log_text)
    inputs = int(done.group(1)) if done else summary.get("inputs", 0)
    crashed = code != 0 or summary.get("crashed", False)
    coverage = _COVERAGE.search(log_text)  # libFuzzer's last line: edges, features, corpus
    return {"target": name, "engine": args.engine, "inputs": inputs,
            "coverage": "/".join(coverage.groups()) if coverage else None,
            "seconds": round(elapsed, 1), "per_second": round(inputs / elapsed) if elapsed else 0,
            "exit": code, "crashed": crashed, "log": log_path,
            "details": {k: v for k, v in summary.items() if k not in ("inputs", "crashed")}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.worker:
        return worker(args)
    sys.path.insert(0, BENCH_DIR)
    import machine

    results = []
    for name in args.targets:
        print(f"fuzz {name}: {args.engine}, up to {args.inputs} inputs"
              + (f" or {args.seconds:g} s" if args.seconds else ""), file=sys.stderr,
              flush=True)
        results.append(run_target(name, args))
    print("| target | engine | inputs | seconds | inputs/s | coverage: edges/features/corpus "
          "| crashes |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['target']} | {r['engine']} | {r['inputs']:,} | {r['seconds']:.0f} | "
              f"{r['per_second']:,} | {r['coverage'] or '-'} | "
              f"{'CRASH, see ' + r['log'] if r['crashed'] else 0} |")
    for r in results:
        print(f"{r['target']}: {json.dumps(r['details'])}")
    stamp = machine.timestamp()
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(),
                     "settings": {"inputs": args.inputs, "seconds": args.seconds,
                                  "engine": args.engine, "seed": args.seed}},
            "results": results}
    print(f"JSON: {machine.write_json(data, args.out, f'fuzz-{stamp}.json')}")
    return 1 if any(r["crashed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
