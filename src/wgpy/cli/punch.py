"""`wgpy punch IFACE --hub URL`: direct paths to the other spokes of a hub-and-spoke network.

The thin shell around cli/directpaths.py (which decides): it reads the hub's view of its peers
from `wgpy serve`'s /json on the hub's tunnel address, reads the local device over UAPI (so the
interface may be run by wgpyd or by wireguard-go), applies the decided changes in one UAPI
`set`, logs each change at info, keeps its links in the state file (cli/pathstate.py, which
`wgpy show --json` and `wgpy show IFACE --paths` read), and sleeps until the next decision is
due. Nothing new goes on the wire: the hub's page is plain HTTP inside the tunnel, and the
direct paths are ordinary WireGuard peers. On SIGTERM or Ctrl-C the entries it made are
removed and the prefixes given back to the hub, leaving the device as its file made it.

--hub may be omitted when the interface's wg-quick file (the one wgpy-quick brought it up
from, or --config) says it in a comment that wg-quick ignores:  `# PunchHub = URL`.
"""

import argparse
import contextlib
import ipaddress
import json
import logging
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from wgpy.cli.directpaths import HubPeer, HubView, Link, Step, Timers, step, withdraw
from wgpy.cli.jsonview import collect
from wgpy.cli.pathstate import forget_links, load_links, save_links
from wgpy.config.model import DeviceConfig, Endpoint
from wgpy.config.names import peer_names, remembered_config_file
from wgpy.config.values import ConfigError, split_endpoint
from wgpy.core.keys import KeyFormatError, key_from_base64, key_to_base64
from wgpy.uapi.client import get_device, set_device

log = logging.getLogger("wgpy.punch")

DEFAULT_HUB_PORT = 9586  # `wgpy serve`'s default port
_HUB_COMMENT = re.compile(r"^\s*#\s*PunchHub\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class HubError(Exception):
    """The hub's page could not be read or is not a `wgpy show --json` document."""


def hub_url(text: str) -> str:
    """`ADDR[:PORT]` or a URL: the URL of the hub's /json (port 9586 and /json by default)."""
    parts = urllib.parse.urlsplit(text if "://" in text else f"http://{text}")
    netloc = parts.netloc if parts.port else f"{parts.netloc}:{DEFAULT_HUB_PORT}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") or "/json",
                                    parts.query, ""))


def hub_from_config(text: str) -> str | None:
    """The `# PunchHub = URL` comment of a wg-quick file (wg-quick ignores comments)."""
    match = _HUB_COMMENT.search(text)
    return match.group(1) if match else None


def _endpoint(text: str | None) -> Endpoint | None:
    """An address and port as the device takes them (ValueError otherwise: a hub's bad
    value must not make the whole `set` of a round fail, fallbacks included)."""
    if not text:
        return None
    try:
        host, port_text = split_endpoint(text)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    ipaddress.ip_address(host.partition("%")[0])
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return Endpoint(host, port)


def hub_view(document: Any, local_keys: set[bytes]) -> HubView:
    """The interface of the hub's document that is a peer here (HubError if none)."""
    try:
        interfaces = document["interfaces"]
        for interface in interfaces:
            key_text = interface.get("public_key")
            if not key_text or key_from_base64(key_text) not in local_keys:
                continue
            peers = tuple(HubPeer(key_from_base64(peer["public_key"]),
                                  _endpoint(peer.get("endpoint")),
                                  tuple(str(ipaddress.ip_network(p, strict=False))
                                        for p in peer.get("allowed_ips") or ()),
                                  float(peer.get("latest_handshake") or 0),
                                  str(peer["name"]) if peer.get("name") else None)
                          for peer in interface["peers"])
            return HubView(key_from_base64(key_text), peers)
    except (KeyError, TypeError, ValueError, AttributeError, KeyFormatError) as exc:
        raise HubError(f"not a wgpy show --json document ({exc})") from None
    raise HubError("none of its interfaces is a peer of this one")


def fetch_hub(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise HubError(str(exc)) from None


class HubPoller(threading.Thread):
    """Reads the hub's page every `interval` seconds in the background, so that a slow or
    unreachable hub never delays the local rounds (a dying direct path is noticed on time)."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(name="hub-poller", daemon=True)
        self.url, self.interval = url, interval
        self._lock = threading.Lock()
        self._document: Any = None
        self._problem: str | None = None

    def latest(self) -> tuple[Any, str | None]:
        """(the last document read, or None; what went wrong with the last read, or None)."""
        with self._lock:
            return self._document, self._problem

    def read_once(self) -> None:
        try:
            document = fetch_hub(self.url, max(self.interval, 5.0))
            with self._lock:
                self._document, self._problem = document, None
        except HubError as exc:
            with self._lock:
                self._problem = str(exc)

    def run(self) -> None:
        while True:
            started = time.monotonic()
            self.read_once()
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))


class Agent:
    """One interface's agent: `tick(now)` does one round and says when the next is due."""

    def __init__(self, iface: str, poller: HubPoller, timers: Timers) -> None:
        self.iface, self.poller, self.timers = iface, poller, timers
        self.hub_key, self.links = load_links(iface)
        self.hub_problem: str | None = None
        self.names: dict[bytes, str] = {}

    def _who(self, key: bytes, links: dict[bytes, Link]) -> str:
        """The peer's name in the interface's file, else the hub's, else its key."""
        link = links.get(key) or self.links.get(key)
        return self.names.get(key) or (link.name if link else None) or key_to_base64(key)

    def _view(self, device: DeviceConfig) -> HubView | None:
        """The hub's latest view; a problem with it is logged once, not every round."""
        document, problem = self.poller.latest()
        view = None
        if document is not None:
            try:
                view = hub_view(document, {peer.public_key for peer in device.peers})
            except HubError as exc:
                problem = str(exc)
        if problem != self.hub_problem:
            if problem is not None:
                log.warning("%s: hub %s: %s (direct paths kept, none tried)", self.iface,
                            self.poller.url, problem)
            else:
                log.info("%s: hub %s answers", self.iface, self.poller.url)
            self.hub_problem = problem
        return view

    def tick(self, now: float) -> float:
        device = get_device(self.iface)
        view = self._view(device)
        if view is None:
            return now + self.poller.interval
        result: Step = step(self.timers, view, device, self.links, now)
        if result.changes:
            set_device(self.iface, DeviceConfig(peers=result.changes))
        for key, what in result.events:
            log.info("%s: peer %s: %s", self.iface, self._who(key, result.links), what)
        if result.links != self.links or self.hub_key != view.public_key:
            save_links(self.iface, view.public_key, result.links)
        self.links, self.hub_key = result.links, view.public_key
        return result.wake_at

    def stop(self) -> None:
        """Entries removed, prefixes back to the hub, state file gone."""
        if self.hub_key is not None and self.links:
            with contextlib.suppress(OSError):
                set_device(self.iface, DeviceConfig(peers=withdraw(self.links, self.hub_key)))
                log.info("%s: direct entries removed; all traffic relayed by the hub",
                         self.iface)
        forget_links(self.iface)


def _arguments(prog: str) -> argparse.ArgumentParser:
    defaults = Timers()
    parser = argparse.ArgumentParser(
        prog=f"{prog} punch", description=(
            "Find direct paths to the other spokes through the hub's `wgpy serve` /json, "
            "and route to them while they work (relayed through the hub otherwise)."))
    parser.add_argument("interface")
    parser.add_argument("--hub", metavar="URL", help="the hub's /json (ADDR[:PORT] or URL; "
                        "default: the `# PunchHub =` comment of the interface's file)")
    parser.add_argument("--config", metavar="FILE", help="the wg-quick file to read "
                        "PunchHub and peer names from (default: the one wgpy-quick used)")
    parser.add_argument("--interval", type=float, default=10.0, metavar="S",
                        help="read the hub's page every S seconds (default 10)")
    parser.add_argument("--keepalive", type=int, default=defaults.keepalive, metavar="S",
                        help=f"PersistentKeepalive of direct entries (default "
                             f"{defaults.keepalive})")
    parser.add_argument("--probe-timeout", type=float, default=defaults.probe_timeout,
                        metavar="S", help="give up a direct attempt after S seconds "
                        f"(default {defaults.probe_timeout:g})")
    parser.add_argument("--dead-after", type=float, default=defaults.dead_after, metavar="S",
                        help="nothing received direct for S seconds: back to the hub "
                             f"(default {defaults.dead_after:g})")
    parser.add_argument("--retry", type=float, default=defaults.retry, metavar="S",
                        help=f"first back-off before a new attempt, doubling (default "
                             f"{defaults.retry:g}, at most {defaults.retry_max:g})")
    parser.add_argument("--settle", type=float, default=defaults.settle, metavar="S",
                        help=f"move prefixes S seconds after the direct handshake (default "
                             f"{defaults.settle:g}; more than the polling period)")
    parser.add_argument("--once", action="store_true", help="one round, then exit "
                        "(entries and state are kept)")
    return parser


def _timers(options: argparse.Namespace) -> Timers:
    values = (options.keepalive, options.probe_timeout, options.dead_after, options.retry,
              options.settle, options.interval)
    if any(value <= 0 for value in values[:5]) or options.interval <= 0:
        raise ValueError("timers must be positive")
    if options.dead_after <= options.keepalive:
        raise ValueError("--dead-after must be longer than --keepalive")
    return Timers(keepalive=options.keepalive, probe_timeout=options.probe_timeout,
                  settle=options.settle, dead_after=options.dead_after, retry=options.retry,
                  retry_max=max(Timers().retry_max, options.retry))


def cmd_punch(prog: str, args: list[str]) -> int:
    try:
        options = _arguments(prog).parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        timers = _timers(options)
    except ValueError as exc:
        print(f"{prog} punch: {exc}", file=sys.stderr)
        return 1
    iface = options.interface
    path = options.config or remembered_config_file(iface)
    text = ""
    if path is not None:
        with contextlib.suppress(OSError), open(path, encoding="utf-8",
                                                errors="surrogateescape") as handle:
            text = handle.read()
    hub = options.hub or hub_from_config(text)
    if hub is None:
        print(f"{prog} punch: no hub: give --hub URL (the hub's `wgpy serve` /json on its "
              "tunnel address) or a `# PunchHub = URL` comment in the interface's file",
              file=sys.stderr)
        return 1
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        url = hub_url(hub)
    except ValueError as exc:
        print(f"{prog} punch: hub {hub}: {exc}", file=sys.stderr)
        return 1
    poller = HubPoller(url, options.interval)
    if options.once:
        poller.read_once()
    else:
        poller.start()
    agent = Agent(iface, poller, timers)
    agent.names = peer_names(text)
    # the local device is read this often, to see a direct path's counters move
    poll = min(1.0, timers.keepalive / 2, options.settle)
    # SIGTERM and Ctrl-C end the loop between rounds, never inside one: what a round set on
    # the device is in the links that stop() withdraws
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.is_set():
        now = time.time()
        try:
            due = agent.tick(now)
        except OSError as exc:
            print(f"{prog} punch: {iface}: {exc.strerror or exc}", file=sys.stderr)
            if options.once:
                return 1
            due = now + options.interval
        if options.once:
            return 0
        stopping.wait(max(0.0, min(due, now + poll) - time.time()))
    agent.stop()
    return 0


def cmd_show_paths(prog: str, args: list[str]) -> int:
    """`wgpy show IFACE --paths [--config FILE]`: per peer, and per other spoke `wgpy punch`
    manages (which has no entry while relayed between attempts), where its traffic goes and
    since when; names as `show --json` finds them, and the hub's for the other spokes."""
    config_file = None
    if len(args) == 3 and args[1] == "--config":
        args, config_file = args[:1], args[2]
    if len(args) != 1 or args[0] in ("all", "interfaces"):
        print(f"Usage: {prog} show <interface> --paths [--config FILE]", file=sys.stderr)
        return 1
    document, errors = collect(args, config_file)
    if errors:
        print(errors[0], file=sys.stderr)
        return 1
    interface = document["interfaces"][0]
    managed = {entry["public_key"]: entry for entry in interface["punch"]}
    entries = {peer["public_key"] for peer in interface["peers"]}
    rows = [*interface["peers"],
            *(entry for key, entry in managed.items() if key not in entries)]
    names = {row["public_key"]: row["name"] for row in rows}
    now = time.time()
    for row in rows:
        key = row["public_key"]
        line = f"peer {names.get(key) or key}: {row['path']}"
        if row["via"] is not None:
            line += f" via {names.get(row['via']) or row['via']}"
        if row["path_since"] is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["path_since"]))
            line += f" since {stamp} ({_ago(now - row['path_since'])})"
        entry = managed.get(key)
        if entry is not None and entry["trying_since"] is not None:
            line += f"; trying direct since {_ago(now - entry['trying_since'])}"
        elif entry is not None and entry["next_attempt"] is not None:
            line += f"; next direct attempt in {_seconds(entry['next_attempt'] - now)}"
        print(line)
    return 0


def _seconds(value: float) -> str:
    return f"{max(0, round(value))} s"


def _ago(value: float) -> str:
    return f"{_seconds(value)} ago"
