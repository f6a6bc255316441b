"""Metrics and the page's drop sentences, without devices: the families and labels that
prometheus_wireguard_exporter's dashboards expect, parsed back with prometheus-client's own
parser."""

import importlib.util

import pytest

from conftest import require
from wgpy.cli.reasons import REASONS
from wgpy.cli.serve import parse_listen, status_page
from wgpy.core.drops import new_counters
from wgpy.core.keys import key_to_base64

IO_DROPS = ("tun_bad_vnet_header", "tun_write_failed", "udp_send_failed", "internal_error")


@pytest.fixture
def prometheus() -> None:
    require(importlib.util.find_spec("prometheus_client") is not None,
            "needs prometheus-client (pip install 'wgpy[test]'): its parser reads /metrics")


def test_every_drop_reason_has_a_sentence():
    assert set(new_counters()) | set(IO_DROPS) == set(REASONS)
    assert all(sentence.endswith(".") for sentence in REASONS.values())


def test_page_carries_the_sentences_safely():
    page = status_page().decode()
    assert "__REASONS__" not in page
    assert REASONS["src_not_allowed"] in page


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9586", ("127.0.0.1", 9586)), ("[::1]:0", ("::1", 0)),
])
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["localhost:80", "127.0.0.1", "127.0.0.1:99999",
                                  "127.0.0.1:\uff18\uff10"])
def test_parse_listen_refuses(text):
    with pytest.raises(ValueError):
        parse_listen(text)


def test_metric_families(prometheus):
    from prometheus_client.parser import text_string_to_metric_families

    from wgpy.cli import metrics
    from wgpy.cli.jsonview import LiveInterface, PeerFile
    from wgpy.uapi.reply import DeviceState

    key = bytes(range(32))
    wg0, wg1 = DeviceState("wg0"), DeviceState("wg1")
    wg0.table.append(key.hex(), ["10.0.0.2/32", "fd::2/128"], endpoint="192.0.2.1:51820",
                     last_handshake_sec="1700000000", rx_bytes="10", tx_bytes="20")
    text = metrics.exposition([
        LiveInterface(wg0, {"replayed": 4}, {}, PeerFile({key: "phone"}, {})),
        LiveInterface(wg1, None, {}, PeerFile({}, {}))]).decode()
    encoded = key_to_base64(key)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    labels = (("allowed_ips", "10.0.0.2/32,fd::2/128"), ("friendly_name", "phone"),
              ("interface", "wg0"), ("public_key", encoded))
    assert samples[("wireguard_sent_bytes_total", labels)] == 20
    assert samples[("wireguard_received_bytes_total", labels)] == 10
    assert samples[("wireguard_latest_handshake_seconds", labels)] == 1700000000
    assert samples[("wgpy_peers", (("interface", "wg1"),))] == 0
    assert samples[("wgpy_drops_total", (("interface", "wg0"), ("reason", "replayed")))] == 4
    assert not any(name == "wgpy_drops_total" and ("interface", "wg1") in key
                   for name, key in samples)
