"""Turning benchmark runs into medians, ratios against a baseline, text tables and a chart."""

import statistics
from dataclasses import dataclass

# Metric key -> column heading; the order is the tables' and the chart's.
METRICS = {
    "tcp1_mbps": "TCP -P1 Mbit/s",
    "tcp4_mbps": "TCP -P4 Mbit/s",
    "udp_mbps": "UDP Mbit/s",
    "udp_loss_pct": "UDP loss %",
    "udp_drop_pct": "rx drops %",
    "daemon_rx_drops": "B daemon drops",
    "rtt_ms": "RTT ms",
    "cpu_a_s_per_gb": "CPU A s/GB",
    "cpu_b_s_per_gb": "CPU B s/GB",
}
# Ratio key -> (metric, heading).
RATIOS = {
    "tcp1": ("tcp1_mbps", "TCP -P1"),
    "tcp4": ("tcp4_mbps", "TCP -P4"),
    "udp": ("udp_mbps", "UDP"),
    "cpu_a": ("cpu_a_s_per_gb", "CPU/GB A"),
    "cpu_b": ("cpu_b_s_per_gb", "CPU/GB B"),
    "rtt": ("rtt_ms", "RTT"),
}


@dataclass
class Config:
    name: str
    label: str
    kind_a: str | None
    kind_b: str | None


def summarize(configs: list[Config], runs: list[dict], baseline: str) -> dict:
    """Per configuration: runs ok/failed, failure reasons, medians, ratios to `baseline`."""
    summary: dict[str, dict] = {}
    for config in configs:
        mine = [run for run in runs if run["config"] == config.name]
        ok = [run for run in mine if run["status"] == "ok"]
        medians = {}
        for metric in METRICS:
            values = [run["metrics"][metric] for run in ok
                      if run["metrics"].get(metric) is not None]
            medians[metric] = statistics.median(values) if values else None
        summary[config.name] = {
            "label": config.label,
            "runs_ok": len(ok),
            "runs_failed": len(mine) - len(ok),
            "reasons": sorted({run["reason"] for run in mine if run["status"] != "ok"}),
            "median": medians,
        }
    base = summary.get(baseline)
    for entry in summary.values():
        entry["ratio"] = {}
        for key, (metric, _) in RATIOS.items():
            mine, theirs = entry["median"][metric], base and base["median"][metric]
            entry["ratio"][key] = mine / theirs if mine is not None and theirs else None
    return summary


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 or value == 0 else f"{value:.3f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown pipe table, padded so it also reads well in a terminal. A row may be short
    (a failure message instead of numbers): Markdown fills the missing cells."""
    widths = [max(len(row[i]) for row in [header, *rows] if len(row) == len(header))
              for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _failed(entry: dict) -> list[str] | None:
    if entry["runs_ok"]:
        return None
    return [f"failed: {'; '.join(entry['reasons']) or 'not run'}"]


def medians_table(summary: dict) -> str:
    header = ["configuration", "runs ok", *METRICS.values()]
    rows = []
    for entry in summary.values():
        runs = f"{entry['runs_ok']}/{entry['runs_ok'] + entry['runs_failed']}"
        cells = _failed(entry) or [_number(entry["median"][m]) for m in METRICS]
        rows.append([entry["label"], runs, *cells])
    return markdown_table(header, rows)


def ratios_table(summary: dict, baseline_label: str) -> str:
    header = ["vs " + baseline_label, *(heading for _, heading in RATIOS.values())]
    rows = []
    for entry in summary.values():
        cells = _failed(entry) or [
            "-" if (r := entry["ratio"][key]) is None else f"{r:.2f}x" for key in RATIOS
        ]
        rows.append([entry["label"], *cells])
    return markdown_table(header, rows)


def failures(runs: list[dict]) -> list[str]:
    return [f"round {run['round']} {run['config']}: {run['reason']}"
            for run in runs if run["status"] != "ok"]


def chart(configs: list[Config], runs: list[dict], summary: dict, path: str,
          title: str) -> None:
    """One panel per metric: a bar at each configuration's median, a dot per round.

    matplotlib is imported here, not at module load, so the benchmark runs without it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 4
    rows = (len(METRICS) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows),
                                squeeze=False)
    names = [config.name for config in configs]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for panel, (metric, heading) in zip(axes.flat, METRICS.items(), strict=False):
        for x, name in enumerate(names):
            colour = colours[x % len(colours)]
            value = summary[name]["median"][metric]
            if value is not None:
                panel.bar(x, value, color=colour, alpha=0.45, width=0.7)
                # The median's value at the foot of its bar, clear of the per-round dots.
                panel.text(x, 0.02, _number(value), ha="center", va="bottom", fontsize=7,
                           transform=panel.get_xaxis_transform())
            points = [run["metrics"][metric] for run in runs
                      if run["config"] == name and run["status"] == "ok"
                      and run["metrics"].get(metric) is not None]
            offsets = [x + 0.12 * (i - (len(points) - 1) / 2) for i in range(len(points))]
            panel.scatter(offsets, points, color=colour, edgecolor="black", s=22, zorder=3)
        if metric.startswith("tcp"):
            # Raw veth runs tens of times faster than any tunnel: a log axis keeps both legible.
            panel.set_yscale("log")
        panel.set_title(heading, fontsize=10)
        panel.set_xticks(range(len(names)))
        panel.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        panel.grid(axis="y", alpha=0.3)
    for panel in list(axes.flat)[len(METRICS):]:
        panel.set_visible(False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
