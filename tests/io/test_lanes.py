"""lanes.py on its own, with in-memory binds (io/memory.py) and a fake clock: when a lane
opens, when it closes, what happens at the limit, and that a closed lane's endpoint is back
on the listening socket."""

import socket

from wgpy.io.lanes import LANE_IDLE, SWEEP_INTERVAL, Lanes, lane_limit
from wgpy.io.memory import ChannelBind, ChannelNetwork
from wgpy.io.udp import IP_PKTINFO

PEER = ("127.0.0.1", 41000)
OTHER = ("127.0.0.1", 41001)


def make(limit: int = 8) -> tuple[ChannelNetwork, ChannelBind, Lanes, list[int]]:
    network = ChannelNetwork()
    bind = network.open(0, 0)
    watched: list[int] = []
    lanes = Lanes(watched.append, watched.remove, limit=limit)
    return network, bind, lanes, watched


def arrives_on(network: ChannelNetwork, bind: ChannelBind, source) -> object:
    """Which socket the network gives a datagram from `source` to."""
    network.deliver(b"x", source, network.endpoint(bind))
    for lane in bind.lanes:
        if lane.pending():
            lane.receive()
            return lane
    assert bind.pending() == 1
    bind.receive()
    return bind


def test_a_lane_opens_once_per_endpoint_and_takes_its_datagrams():
    network, bind, lanes, watched = make()
    lanes.authenticated(bind, PEER, bind.pktinfo, 0.0)
    lanes.authenticated(bind, PEER, bind.pktinfo, 1.0)
    [lane] = bind.lanes
    assert watched == [lane.fileno()] and lanes.by_fd[lane.fileno()].lane is lane
    assert arrives_on(network, bind, PEER) is lane
    assert arrives_on(network, bind, OTHER) is bind


def test_without_an_arrival_address_no_lane_opens():
    _, bind, lanes, _ = make()
    lanes.authenticated(bind, PEER, None, 0.0)
    assert len(lanes) == 0


def test_an_idle_lane_closes_and_its_endpoint_is_back_on_the_listening_socket():
    network, bind, lanes, watched = make()
    lanes.authenticated(bind, PEER, bind.pktinfo, 0.0)
    lanes.authenticated(bind, OTHER, bind.pktinfo, 0.0)
    peer_lane, other_lane = bind.lanes
    lanes.seen(peer_lane.fileno(), LANE_IDLE - 1)  # PEER keeps authenticating
    lanes.sweep(LANE_IDLE - 1)  # nothing idle long enough yet
    assert len(lanes) == 2
    lanes.sweep(LANE_IDLE + 1)  # OTHER is, but sweeps come SWEEP_INTERVAL apart
    assert len(lanes) == 2
    lanes.sweep(LANE_IDLE - 1 + SWEEP_INTERVAL)
    assert lanes.endpoints() == [PEER] and other_lane.closed and not peer_lane.closed
    assert watched == [peer_lane.fileno()]
    assert arrives_on(network, bind, OTHER) is bind
    lanes.sweep(2 * LANE_IDLE)
    assert len(lanes) == 0 and watched == [] and peer_lane.closed
    assert arrives_on(network, bind, PEER) is bind


def test_an_endpoint_that_sends_to_another_of_our_addresses_gets_a_new_lane():
    _, bind, lanes, _ = make()
    lanes.authenticated(bind, PEER, bind.pktinfo, 0.0)
    elsewhere = (socket.IPPROTO_IP, IP_PKTINFO, socket.inet_aton("127.0.0.2"))
    lanes.authenticated(bind, PEER, elsewhere, 1.0)
    first, second = bind.lanes
    assert first.closed and not second.closed and len(lanes) == 1


def test_beyond_the_limit_endpoints_share_the_listening_socket():
    network, bind, lanes, _ = make(limit=1)
    lanes.authenticated(bind, PEER, bind.pktinfo, 0.0)
    lanes.authenticated(bind, OTHER, bind.pktinfo, 0.0)
    assert lanes.endpoints() == [PEER]
    assert arrives_on(network, bind, OTHER) is bind


def test_a_lane_the_kernel_refuses_is_counted_and_nothing_else_changes():
    _, bind, lanes, watched = make()
    bind.refuse_lanes = True
    lanes.authenticated(bind, PEER, bind.pktinfo, 0.0)
    lanes.authenticated(bind, PEER, bind.pktinfo, 0.1)
    assert lanes.refused == 2 and len(lanes) == 0 and watched == []


def test_close_all_closes_every_lane():
    _, bind, lanes, watched = make()
    for endpoint in (PEER, OTHER):
        lanes.authenticated(bind, endpoint, bind.pktinfo, 0.0)
    lanes.close_all()
    assert all(lane.closed for lane in bind.lanes) and watched == [] and not lanes.by_fd


def test_the_limit_leaves_most_file_descriptors_to_everything_else():
    assert 0 < lane_limit() <= 4096
