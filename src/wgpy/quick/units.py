"""systemd units for wgpy: `wgpy-quick@.service` (as wireguard-tools' wg-quick@.service),
`wgpyd@.service` (a bare device, configured by something else over UAPI) and
`wgpy-reresolve@.service` (endpoint hostnames of a wgpy-quick interface resolved again when a
peer's handshakes stall: `wgpy reresolve`, cli/reresolve.py) and `wgpy-punch@.service` (direct
paths to the other spokes of a hub-and-spoke network: `wgpy punch`, cli/punch.py, which finds
the hub in the interface's file, `# PunchHub = URL` as `wgpy mesh --punch` writes it) and
`wgpy-serve@.service` (`wgpy serve` for one interface: on a hub, the page its spokes' `wgpy
punch` reads, on the address named in /etc/default/wgpy-serve-IFACE).

The units name the installed commands by absolute path, found where pip put this
interpreter's scripts: systemd's PATH does not include a virtualenv or pyenv, and a unit that
starts some other `wg-quick` than the one installed with wgpy would be a silent surprise. So
they are written from templates by `wgpy-quick install-units [DIR]` rather than shipped as
fixed files.
"""

import os
import sysconfig

DEFAULT_UNIT_DIR = "/etc/systemd/system"

QUICK_UNIT = """\
[Unit]
Description=WireGuard (wgpy) via wgpy-quick for %I
After=network-online.target nss-lookup.target
Wants=network-online.target nss-lookup.target
Documentation=man:wg-quick(8)
Documentation=https://www.wireguard.com/

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={bindir}/wgpy-quick up %i
ExecStop={bindir}/wgpy-quick down %i
ExecReload=/bin/bash -c 'exec {bindir}/wgpy syncconf %i <(exec {bindir}/wgpy-quick strip %i)'
Environment=WG_ENDPOINT_RESOLUTION_RETRIES=infinity

[Install]
WantedBy=multi-user.target
"""

# Type=notify: wgpyd says READY=1 once its UAPI socket accepts, so a unit ordered after this
# one can configure the device at once. SIGTERM (systemd's stop) removes socket and link.
DAEMON_UNIT = """\
[Unit]
Description=WireGuard (wgpy) userspace device %I
After=network-online.target
Wants=network-online.target
Documentation=https://www.wireguard.com/

[Service]
Type=notify
ExecStart={bindir}/wgpyd -f %i
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

# Started and stopped with the wgpy-quick unit of the same interface (enabled, it is wanted by
# it); every 30 s, as wireguard-tools' reresolve-dns timer, it looks only at peers whose
# handshakes have stalled, so a working tunnel costs no DNS query.
RERESOLVE_UNIT = """\
[Unit]
Description=WireGuard (wgpy) endpoint hostnames re-resolved for %I
After=wgpy-quick@%i.service
BindsTo=wgpy-quick@%i.service
Documentation=https://www.wireguard.com/

[Service]
ExecStart={bindir}/wgpy reresolve %i --interval 30
Restart=on-failure

[Install]
WantedBy=wgpy-quick@%i.service
"""

# Started and stopped with the wgpy-quick unit like the re-resolver; on stop it removes the
# direct entries it made and gives their prefixes back to the hub.
PUNCH_UNIT = """\
[Unit]
Description=WireGuard (wgpy) direct paths to other spokes for %I
After=wgpy-quick@%i.service
BindsTo=wgpy-quick@%i.service
Documentation=https://www.wireguard.com/

[Service]
ExecStart={bindir}/wgpy punch %i
Restart=on-failure

[Install]
WantedBy=wgpy-quick@%i.service
"""

# Bound to the wgpy-quick unit, so the interface and its tunnel address exist when it binds.
# Loopback unless /etc/default/wgpy-serve-IFACE says otherwise: a hub publishing to its spokes
# sets WGPY_SERVE_LISTEN to its tunnel address, never a public one.
SERVE_UNIT = """\
[Unit]
Description=WireGuard (wgpy) metrics, JSON and status page for %I
After=wgpy-quick@%i.service
BindsTo=wgpy-quick@%i.service
Documentation=https://www.wireguard.com/

[Service]
Environment=WGPY_SERVE_LISTEN=127.0.0.1:9586
EnvironmentFile=-/etc/default/wgpy-serve-%i
ExecStart={bindir}/wgpy serve --listen ${{WGPY_SERVE_LISTEN}} %i
Restart=on-failure

[Install]
WantedBy=wgpy-quick@%i.service
"""

UNITS = {"wgpy-quick@.service": QUICK_UNIT, "wgpyd@.service": DAEMON_UNIT,
         "wgpy-reresolve@.service": RERESOLVE_UNIT, "wgpy-punch@.service": PUNCH_UNIT,
         "wgpy-serve@.service": SERVE_UNIT}


def scripts_dir() -> str:
    """Where this interpreter's console scripts (wgpy, wgpyd, wgpy-quick) are installed."""
    return sysconfig.get_path("scripts")


def render_units(bindir: str | None = None) -> dict[str, str]:
    """Unit file name -> text, naming the commands in `bindir` (default: scripts_dir())."""
    directory = bindir or scripts_dir()
    return {name: text.format(bindir=directory) for name, text in UNITS.items()}


def install_units(unit_dir: str = DEFAULT_UNIT_DIR, bindir: str | None = None) -> list[str]:
    """Write the units into `unit_dir`; returns the paths written."""
    os.makedirs(unit_dir, exist_ok=True)
    written = []
    for name, text in render_units(bindir).items():
        path = os.path.join(unit_dir, name)
        with open(path, "w") as handle:
            handle.write(text)
        written.append(path)
    return written
