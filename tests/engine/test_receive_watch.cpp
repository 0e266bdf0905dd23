// The watch for a link that fails one way (ReceiveWatch) on its own, looked at every half period
// as the agent's ticks do when nothing comes: the cases the simulator reaches only by chance.
#include <catch2/catch.hpp>

#include <cstdint>

#include "receive_watch.hpp"

using namespace nlb;

namespace test_receive_watch {

namespace {

constexpr std::int64_t kPeriod = 1000;

// One host's watch, its peers' frames counted in `heard`, clients' frames and the gateway's
// answers in `clients`; the gateway answers every request while `answers`, in before the next
// look (as Simulator::watch_receiving has it).
struct Watch {
    ReceiveWatch watch;
    std::uint64_t heard = 0, clients = 0;
    bool answers = true;
    int asked = 0;
    std::int64_t period = kPeriod;

    bool look(std::int64_t now, int peers, bool can_probe) {
        return watch.receiving(
            now, period, heard, peers, can_probe, [&] { return clients; },
            [&] {
                ++asked;
                clients += answers ? 1 : 0;
            });
    }
};

// Looks every half period from `from` to `to`; whether every look said it receives.
bool up_throughout(Watch& w, std::int64_t from, std::int64_t to, int peers, bool can_probe) {
    bool up = true;
    for (std::int64_t t = from; t <= to; t += kPeriod / 2)
        up = w.look(t, peers, can_probe) && up;
    return up;
}

} // namespace

// A peer's frame a period late (a lost heartbeat, jitter) is routine: the watch's first look
// then asks the gateway, which answers. Taken as the peer's death, that answer ended the watch
// until a peer was heard again; a port that stopped delivering in that moment went unnoticed
// for good, and in a cluster of two its host formed an epoch alone while its peer let go of
// every bucket for it (test_one_way_link.cpp, "two hosts: the port stops delivering just after
// …").
TEST_CASE("receive watch: an answer while the peer is a period late does not end the watch") {
    Watch w;
    w.watch.restart(0);
    w.heard = 1;
    CHECK(w.look(0, 1, true));
    // The peer's next frame is late: the first look asks, the answer comes.
    CHECK(up_throughout(w, kPeriod / 2, 3 * kPeriod / 2, 1, true));
    CHECK(w.asked >= 1);
    // Then the port stops delivering, before the peer is heard again.
    w.answers = false;
    bool down = false;
    for (std::int64_t t = 2 * kPeriod; t <= 6 * kPeriod && !down; t += kPeriod / 2)
        down = !w.look(t, 1, true);
    CHECK(down);
}

// The same with clients' frames and no gateway (two peers): one that came while the peers were
// a period late ended the watch as well.
TEST_CASE("receive watch: a client's frame while the peers are a period late does not end the "
          "watch") {
    Watch w;
    w.watch.restart(0);
    w.heard = 1;
    CHECK(w.look(0, 2, false));
    CHECK(w.look(kPeriod, 2, false)); // the first look
    ++w.clients;
    CHECK(w.look(3 * kPeriod / 2, 2, false));
    bool down = false;
    for (std::int64_t t = 2 * kPeriod; t <= 6 * kPeriod && !down; t += kPeriod / 2)
        down = !w.look(t, 2, false);
    CHECK(down);
}

// The peer crashed on a quiet segment: the gateway answers every question, the host never goes
// down, and once its engine counted the peer out (the view empty) the watch ends.
TEST_CASE("receive watch: a survivor answered by the gateway never goes down, and stops asking "
          "once its peer is counted out") {
    Watch w;
    w.watch.restart(0);
    w.heard = 1;
    CHECK(w.look(0, 1, true));
    CHECK(up_throughout(w, kPeriod / 2, 6 * kPeriod, 1, true));
    CHECK(up_throughout(w, 6 * kPeriod + kPeriod / 2, 8 * kPeriod, 0, true));
    const int asked = w.asked;
    CHECK(up_throughout(w, 8 * kPeriod + kPeriod / 2, 30 * kPeriod, 0, true));
    CHECK(w.asked == asked);
    CHECK_FALSE(w.watch.probing());
}

// Without a gateway: two peers crashed together, a client's frame seconds later ends the watch
// once the host went down (docs/convergence.md: "however seldom they come").
TEST_CASE("receive watch: no gateway, peers crashed together: down, then up for good at the "
          "first client's frame") {
    Watch w;
    w.watch.restart(0);
    w.heard = 1;
    CHECK(w.look(0, 2, false));
    CHECK_FALSE(up_throughout(w, kPeriod / 2, 4 * kPeriod, 2, false));
    CHECK_FALSE(w.look(4 * kPeriod, 2, false));
    ++w.clients;
    CHECK(w.look(4 * kPeriod + kPeriod / 2, 2, false));
    CHECK(up_throughout(w, 5 * kPeriod, 30 * kPeriod, 2, false));
}

// A host restarted behind a port that delivers nothing heard no peer, and the watch applied
// only to a host that had: it formed an epoch alone beside the cluster, and two hosts owned
// buckets once the port delivered again. With a gateway to ask, it need not have heard anyone.
TEST_CASE("receive watch: with a gateway, a host that heard nobody since its start is watched") {
    Watch w;
    w.watch.restart(0);
    w.answers = false;
    bool down = false;
    for (std::int64_t t = 0; t <= 3 * kPeriod && !down; t += kPeriod / 2)
        down = !w.look(t, 0, true);
    CHECK(down);
    CHECK(w.asked >= 2);
    // Its port delivers again: the gateway's answer brings it back, and ends the watch (it is
    // alone: no peer to hear).
    w.answers = true;
    CHECK_FALSE(w.look(4 * kPeriod, 0, true)); // asks
    CHECK(w.look(4 * kPeriod + kPeriod / 2, 0, true));
    const int asked = w.asked;
    CHECK(up_throughout(w, 7 * kPeriod, 30 * kPeriod, 0, true));
    CHECK(w.asked == asked);
    CHECK_FALSE(w.watch.probing());
}

TEST_CASE("receive watch: a host alone from its start, the gateway answering, never goes down "
          "and stops asking") {
    Watch w;
    w.watch.restart(0);
    CHECK(up_throughout(w, 0, 30 * kPeriod, 0, true));
    CHECK(w.asked >= 1);
    CHECK(w.asked <= 3);
    CHECK_FALSE(w.watch.probing());
}

// The route to the gateway goes (a network manager reapplying its configuration) while the
// watch asks: the watch no longer applies to a host with one peer, and its socket must go
// (unread, it would hold what came meanwhile and count it as an answer later).
TEST_CASE("receive watch: a gateway gone while asking: no longer asking") {
    Watch w;
    w.watch.restart(0);
    w.heard = 1;
    CHECK(w.look(0, 1, true));
    w.answers = false;
    CHECK(w.look(kPeriod, 1, true));
    CHECK(w.watch.probing());
    CHECK(w.look(3 * kPeriod / 2, 1, false));
    CHECK_FALSE(w.watch.probing());
    // Clients' frames meanwhile (the port delivered then) prove nothing of later: with the
    // route back, the watch starts over and, nothing coming, fires.
    ++w.clients;
    CHECK(w.look(2 * kPeriod, 1, false));
    bool down = false;
    for (std::int64_t t = 5 * kPeriod / 2; t <= 6 * kPeriod && !down; t += kPeriod / 2)
        down = !w.look(t, 1, true);
    CHECK(down);
}

// Down, the watch goes on asking, so that the host comes back once its port delivers and the
// gateway answers. Once a period at the shortest period (100 ms) and four gateways made 40 ARP
// requests a second for as long as the port stayed dead: past what a switch's ARP inspection
// lets an untrusted port send (15 a second by default on some), which then shuts the port.
TEST_CASE("receive watch: down, it asks at most once a second after its first three requests") {
    Watch w;
    w.period = 100;
    w.watch.restart(0);
    w.heard = 1;
    w.answers = false;
    CHECK(w.look(0, 1, true));
    bool down = false;
    for (std::int64_t t = 50; t <= 400; t += 50)
        down = !w.look(t, 1, true) || down;
    CHECK(down);
    CHECK(w.asked == 3);
    for (std::int64_t t = 450; t <= 10400; t += 50)
        CHECK_FALSE(w.look(t, 1, true));
    CHECK(w.asked <= 3 + 10);
    // The port delivers again: answered within a second and a look.
    w.answers = true;
    bool up = false;
    for (std::int64_t t = 10450; t <= 11500 && !up; t += 50)
        up = w.look(t, 1, true);
    CHECK(up);
}

} // namespace test_receive_watch
