#!/usr/bin/env bash
# Installs what wgpy and its tests use: Debian packages (as root) and the Python package.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=""
    for pkg in wireguard-go wireguard-tools iperf3 iproute2 iputils-ping nftables conntrack systemd zbar-tools chromium; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
    done
    if [ -n "$need" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq $need >/dev/null
    fi
else
    echo "install.sh: not root; skipping Debian packages (wireguard-go, wireguard-tools, iperf3, ...)" >&2
fi
python3 -m pip install -q -e '.[test,web]'
