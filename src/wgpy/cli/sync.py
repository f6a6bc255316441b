"""`wg syncconf`: turn a parsed file into a request that removes the peers the device has and
the file lacks, instead of replacing every peer (which would drop their sessions).

As setconf.c's sync_conf in wireguard-tools v1.0.20210914: nothing changes when the file has
no peers or the device has none; otherwise `replace_peers` is dropped and one removal per
missing peer is put in front, each prepended in ascending key order (so they end up in
descending order). Later wireguard-tools also clear a preshared key or keepalive the file no
longer sets; this version, like the wg it mirrors, leaves them.
"""

from wgpy.config.model import DeviceConfig, PeerConfig
from wgpy.uapi.reply import DeviceState


def add_removals(device: DeviceConfig, runtime: DeviceState) -> None:
    """Rewrite `device` (parsed from the file, with replace_peers) for `runtime`'s peers."""
    if not device.peers or not runtime.table.public_keys:
        return
    device.replace_peers = False
    in_file = {peer.public_key for peer in device.peers}
    missing = set(map(bytes.fromhex, runtime.table.public_keys)) - in_file
    # all put in front at once (one insert per peer costs the square of their number)
    device.peers[:0] = [PeerConfig(public_key=key, remove=True)
                        for key in sorted(missing, reverse=True)]
