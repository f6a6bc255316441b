"""WireGuard configuration: wg's and wg-quick's file formats and `wg set` arguments.

    from wgpy.config import read_config, format_showconf
    device = read_config("/etc/wireguard/wg0.conf", quick=True)   # a DeviceConfig
    print(device.quick.addresses, [p.allowed_ips for p in device.peers])
"""

from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig, QuickConfig
from wgpy.config.parser import parse_config, parse_set_arguments, read_config, strip_quick
from wgpy.config.save import update_config_text
from wgpy.config.values import ConfigError
from wgpy.config.writer import format_quick, format_showconf

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
