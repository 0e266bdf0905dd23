// cluster.vlan between hosts: it is in the fingerprint, so hosts that take frames of
// different VLANs never share an epoch and the refusal names the key; an untagged cluster
// fingerprints as versions before the key did (docs/config.md, "VLANs").
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_cluster_vlan {

namespace {

constexpr std::int64_t kPeriod = 1000;

EngineConfig on_vlan(std::uint8_t priority, std::uint16_t vlan) {
    auto c = default_config(priority);
    c.cluster.vlan = vlan;
    return c;
}

} // namespace

TEST_CASE("the fingerprint covers cluster.vlan, and VLAN 0 leaves it as it was") {
    const auto rules = default_config(1).rules;
    // Pinned (test_hash_seed.cpp): an untagged host must agree with versions before the key.
    CHECK(rules_fingerprint(rules, NLB_FLOW_SEED, 0) == 0x5ae95f9b2c6f9729u);
    CHECK(rules_fingerprint(rules, NLB_FLOW_SEED, 100) != rules_fingerprint(rules, NLB_FLOW_SEED));
    CHECK(rules_fingerprint(rules, NLB_FLOW_SEED, 100) !=
          rules_fingerprint(rules, NLB_FLOW_SEED, 101));
    CHECK(rules_fingerprint(rules, 0x1234, 100) != rules_fingerprint(rules, 0x1234));
    CHECK(rules_fingerprint(rules, 0x1234, 100) != rules_fingerprint(rules, NLB_FLOW_SEED, 100));
}

TEST_CASE("a host on another VLAN is refused, naming cluster.vlan; the cluster stays "
          "converged") {
    Simulator sim(2200, {});
    for (std::uint8_t p = 1; p <= 3; ++p)
        sim.add_host(on_vlan(p, 100));
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    // Heard on the second path (or through a switch that joins the VLANs): untagged here.
    const auto j = sim.add_host(on_vlan(4, 0));
    sim.run_until(sim.now() + 30 * kPeriod);
    const auto& refused = *sim.host(j).engine;
    CHECK(refused.state() == HostState::refused);
    CHECK(refused.refuse_reason() == RefuseReason::rules_differ);
    CHECK(refused.refuse_detail().find("port_rules or cluster.vlan (untagged here) differ") !=
          std::string::npos);
    CHECK(refusals(sim.host(0))
              .find("host 4 refused: port_rules or cluster.vlan (100 here) "
                    "differ from those on host 4") != std::string::npos);
    CHECK(sim.settled());
    CHECK(sim.max_double_ms() == 0);
}

} // namespace test_cluster_vlan
