"""`wgpy punch`'s shell, the parts that need no network: where the hub is, what of its page is
read, the options, and the state file (the decisions are tests/cli/test_directpaths.py's, the
whole thing in namespaces tests/integration/test_nat_punch.py's)."""

import os

import pytest

from wgpy.cli.directpaths import DIRECT, Link
from wgpy.cli.pathstate import forget_links, load_links, save_links, state_path
from wgpy.cli.punch import HubError, hub_from_config, hub_url, hub_view
from wgpy.config.model import Endpoint
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

from clilab import run_wgpy


def key() -> bytes:
    return public_key(generate_private_key(os.urandom))


@pytest.mark.parametrize(("given", "url"), [
    ("10.100.0.1", "http://10.100.0.1:9586/json"),
    ("10.100.0.1:8080", "http://10.100.0.1:8080/json"),
    ("[fd00::1]", "http://[fd00::1]:9586/json"),
    ("[fd00::1]:80", "http://[fd00::1]:80/json"),
    ("http://hub.vpn:9586/json", "http://hub.vpn:9586/json"),
    ("http://10.100.0.1/", "http://10.100.0.1:9586/json"),
])
def test_hub_url_fills_in_port_and_path(given, url):
    assert hub_url(given) == url


def test_hub_from_config_reads_the_comment_only():
    text = ("[Interface]\nPrivateKey = x\n# PunchHub = http://10.100.0.1:9586/json  (read by "
            "`wgpy punch`)\nAddress = 10.100.0.2/32\n")
    assert hub_from_config(text) == "http://10.100.0.1:9586/json"
    assert hub_from_config("[Interface]\nPunchHub = http://x/json\n") is None  # not a comment


def test_hub_view_takes_the_interface_that_is_our_peer():
    hub, other_hub, spoke = key(), key(), key()
    document = {"schema": 3, "interfaces": [
        {"public_key": key_to_base64(other_hub), "peers": []},
        {"public_key": key_to_base64(hub), "peers": [
            {"public_key": key_to_base64(spoke), "endpoint": "[2001:db8::7]:4000",
             "allowed_ips": ["10.100.0.3/32"], "latest_handshake": 1700000000},
            {"public_key": key_to_base64(key()), "endpoint": None, "allowed_ips": [],
             "latest_handshake": 0}]}]}
    view = hub_view(document, {hub})
    assert view.public_key == hub
    first, second = view.peers
    assert (first.public_key, first.endpoint, first.allowed_ips, first.latest_handshake) == (
        spoke, Endpoint("2001:db8::7", 4000), ("10.100.0.3/32",), 1700000000.0)
    assert second.endpoint is None
    with pytest.raises(HubError, match="none of its interfaces"):
        hub_view(document, {key()})


HUB = key()


@pytest.mark.parametrize("document", [
    [], "<html>", {"interfaces": 3},
    {"interfaces": [{"public_key": "not base64", "peers": []}]},
    {"interfaces": [{"public_key": key_to_base64(HUB), "peers": [{}]}]},
    {"interfaces": [{"public_key": key_to_base64(HUB), "peers": [
        {"public_key": key_to_base64(HUB), "latest_handshake": "soon"}]}]},
    *({"interfaces": [{"public_key": key_to_base64(HUB), "peers": [
        {"public_key": key_to_base64(HUB), **bad}]}]} for bad in (
            {"endpoint": "hub.example:51820"}, {"endpoint": "192.0.2.1:70000"},
            {"endpoint": "192.0.2.1"}, {"allowed_ips": ["10.0.0.0/33"]},
            {"allowed_ips": ["everything"]})),
])
def test_a_page_that_is_not_the_json_is_a_hub_error(document):
    with pytest.raises(HubError):
        hub_view(document, {HUB})


def test_state_file_round_trip_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WGPY_STATE_DIR", str(tmp_path))
    hub, spoke = key(), key()
    links = {spoke: Link(spoke, ["10.100.0.3/32"], DIRECT, since=1700000000.0,
                         hub_exact=["10.100.0.3/32"])}
    save_links("wgx", hub, links)
    assert load_links("wgx") == (hub, links)
    assert [name for name in os.listdir(tmp_path)] == ["wgx.paths.json"]  # no temporary left
    with open(state_path("wgx"), "w") as handle:
        handle.write('{"hub": "' + key_to_base64(hub) + '", "links": {"bad": {}, "'
                     + key_to_base64(spoke) + '": {"path": "sideways"}}}')
    assert load_links("wgx") == (hub, {})  # unreadable records skipped, never guessed
    with open(state_path("wgx"), "w") as handle:
        handle.write("{")
    assert load_links("wgx") == (None, {})
    forget_links("wgx")
    assert load_links("wgx") == (None, {}) and not os.listdir(tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["wgx", "--hub", "10.0.0.1", "--keepalive", "0"], "timers must be positive"),
    (["wgx", "--hub", "10.0.0.1", "--keepalive", "5", "--dead-after", "5"],
     "--dead-after must be longer than --keepalive"),
    (["wgx", "--config", "/nonexistent"], "no hub"),
    (["wgx", "--hub", "http://10.0.0.1:port/json"], "hub http://10.0.0.1:port/json"),
])
def test_bad_options_are_refused_before_anything_runs(args, message, tmp_path):
    result = run_wgpy("punch", *args, env={"WGPY_STATE_DIR": str(tmp_path)})
    assert result.returncode == 1 and message in result.stderr, result.stderr
