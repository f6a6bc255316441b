"""`wgpy serve [--listen ADDR:PORT] [IFACE...]`: a read-only status page, Prometheus metrics
and the JSON of `wgpy show --json` over HTTP, for wgpyd and wireguard-go devices alike.

    /          the live status page (status.html: it polls /json and draws itself)
    /metrics   Prometheus text format (cli/metrics.py)
    /json      the `wgpy show --json` document

Read-only by construction (GET only, nothing that sets), and bound to loopback unless told
otherwise: a device's peers and endpoints are not for everyone. The standard library's
threading HTTP server is enough for a page and a scraper; each request reads the devices live.
"""

import argparse
import ipaddress
import json
import socket
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from wgpy.cli.jsonview import collect
from wgpy.cli.metrics import scrape
from wgpy.cli.reasons import REASONS
from wgpy.config.values import split_endpoint, unsigned
from wgpy.core.peer import Endpoint
from wgpy.uapi.client import list_interfaces

DEFAULT_LISTEN = "127.0.0.1:9586"  # prometheus_wireguard_exporter's port
JSON_TYPE = "application/json"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def status_page() -> bytes:
    """The page, with the drop reasons' sentences filled in."""
    page = resources.files("wgpy.cli").joinpath("status.html").read_text(encoding="utf-8")
    reasons = json.dumps(REASONS).replace("</", "<\\/")  # inside a <script> element
    return page.replace("__REASONS__", reasons).encode()


def make_handler(names: Callable[[], list[str]]) -> type[BaseHTTPRequestHandler]:
    page = status_page()

    class Handler(BaseHTTPRequestHandler):
        server_version = "wgpy-serve"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/html; charset=utf-8", page)
            elif path == "/metrics":
                self._send(200, METRICS_TYPE, scrape(names))
            elif path == "/json":
                doc, _ = collect(names())
                self._send(200, JSON_TYPE, json.dumps(doc).encode())
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scraper every few seconds is not news

    return Handler


def parse_listen(text: str) -> Endpoint:
    """ADDR:PORT or [V6]:PORT (port 0: any free one); ValueError otherwise."""
    host, port_text = split_endpoint(text)
    ipaddress.ip_address(host)
    port = unsigned(port_text, 65535)
    if port is None:
        raise ValueError(f"bad port {port_text!r}")
    return host, port


def make_server(listen: Endpoint, interfaces: list[str]) -> ThreadingHTTPServer:
    """The server for `interfaces` (none: every interface at each request); OSError when
    the address cannot be bound."""
    def names() -> list[str]:
        return interfaces or list_interfaces()

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET

    return Server(listen, make_handler(names))


def cmd_serve(prog: str, args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{prog} serve",
        description="Serve a live status page, /metrics and /json (read-only).")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="ADDR:PORT",
                        help=f"where to listen (default {DEFAULT_LISTEN}: loopback only)")
    parser.add_argument("interfaces", nargs="*", metavar="IFACE",
                        help="interfaces to show (default: every one, as `wg show all`)")
    try:
        options = parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        listen = parse_listen(options.listen)
    except ValueError as exc:
        print(f"{prog} serve: --listen {options.listen}: {exc}", file=sys.stderr)
        return 1
    try:
        server = make_server(listen, options.interfaces)
    except OSError as exc:
        print(f"{prog} serve: {options.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    host, port = listen[0], server.server_port
    print(f"{prog} serve: http://{'[' + host + ']' if ':' in host else host}:{port}/",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
