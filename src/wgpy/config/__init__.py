"""WireGuard configuration: wg's and wg-quick's file formats and `wg set` arguments.

    from wgpy.config import read_config, format_showconf
    device = read_config("/etc/wireguard/wg0.conf", quick=True)   # a DeviceConfig
    print(device.quick.addresses, [p.allowed_ips for p in device.peers])

The names below are imported on first use (PEP 562), not with the package: importing one
light submodule (config.numbers, for `wgpy show`) must not pull in the whole parser.
"""

import importlib

TYPE_CHECKING = False  # typing's flag without importing typing (see above)
if TYPE_CHECKING:
    from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig, QuickConfig
    from wgpy.config.parser import parse_config, parse_set_arguments, read_config, strip_quick
    from wgpy.config.save import update_config_text
    from wgpy.config.values import ConfigError
    from wgpy.config.writer import format_quick, format_showconf

_HOMES = {
    "AllowedIP": "model", "DeviceConfig": "model", "Endpoint": "model", "PeerConfig": "model",
    "QuickConfig": "model", "parse_config": "parser", "parse_set_arguments": "parser",
    "read_config": "parser", "strip_quick": "parser", "update_config_text": "save",
    "ConfigError": "values", "format_quick": "writer", "format_showconf": "writer",
}

__all__ = [
    "AllowedIP",
    "ConfigError",
    "DeviceConfig",
    "Endpoint",
    "PeerConfig",
    "QuickConfig",
    "format_quick",
    "format_showconf",
    "parse_config",
    "parse_set_arguments",
    "read_config",
    "strip_quick",
    "update_config_text",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wgpy.config' has no attribute {name!r}")
    return getattr(importlib.import_module(f"wgpy.config.{home}"), name)
