// Whole clusters on the simulated network: convergence, failure, join, loss, partitions.
#include <catch2/catch.hpp>

#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace {

constexpr std::int64_t kPeriod = 1000;

Simulator cluster(std::uint64_t seed, std::size_t n, NetworkParams net = {}) {
    Simulator sim(seed, net);
    for (std::size_t i = 0; i < n; ++i)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
    return sim;
}

} // namespace

TEST_CASE("three hosts converge") {
    auto sim = cluster(1, 3);
    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30 * kPeriod));
    INFO("settled at " << sim.now());
    CHECK(sim.max_double_ms() == 0);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto n = sim.host(i).engine->buckets_owned(0);
        CHECK((n == 1365 || n == 1366));
    }
    CHECK(sim.host(0).engine->buckets_owned(NLB_RULE_DEFAULT) == NLB_BUCKETS);
}
