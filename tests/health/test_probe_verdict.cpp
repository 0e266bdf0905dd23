// Rise/fall as keepalived and HAProxy count them: consecutive results against the verdict.
#include <catch2/catch.hpp>

#include <vector>

#include "probe_verdict.hpp"

using nlb::ProbeVerdict;

namespace {

// The verdict after each result of `results` (1 = pass).
std::vector<int> run(ProbeVerdict v, const std::vector<int>& results) {
    std::vector<int> out;
    for (int r : results) {
        v.record(r != 0);
        out.push_back(v.up() ? 1 : 0);
    }
    return out;
}

} // namespace

TEST_CASE("a probe starts down and needs rise passes in a row") {
    ProbeVerdict v(2, 3);
    CHECK_FALSE(v.up());
    CHECK(run(v, {1, 1}) == std::vector<int>{0, 1});
    CHECK(run(v, {1, 0, 1, 0, 1, 1}) == std::vector<int>{0, 0, 0, 0, 0, 1});
}

TEST_CASE("fall failures in a row turn it down; a pass in between starts over") {
    ProbeVerdict v(1, 3);
    CHECK(run(v, {1, 0, 0, 1, 0, 0, 0}) == std::vector<int>{1, 1, 1, 1, 1, 1, 0});
}

TEST_CASE("record says when the verdict changed, and the streak counts toward it") {
    ProbeVerdict v(2, 2);
    CHECK_FALSE(v.record(true));
    CHECK(v.streak() == 1);
    CHECK(v.record(true));
    CHECK(v.up());
    CHECK(v.streak() == 0);
    CHECK_FALSE(v.record(true));
    CHECK_FALSE(v.record(false));
    CHECK(v.streak() == 1);
    CHECK(v.record(false));
    CHECK_FALSE(v.up());
}

TEST_CASE("a probe flapping every check never changes with rise and fall above 1") {
    ProbeVerdict v(2, 2);
    int changes = 0;
    for (int i = 0; i < 100; ++i)
        changes += v.record(i % 2 == 0) ? 1 : 0;
    CHECK(changes == 0);
    ProbeVerdict once(1, 1);
    changes = 0;
    for (int i = 0; i < 100; ++i)
        changes += once.record(i % 2 == 0) ? 1 : 0;
    CHECK(changes == 100);
}

TEST_CASE("rise and fall of 0 count as 1") {
    ProbeVerdict v(0, 0);
    CHECK(v.record(true));
    CHECK(v.record(false));
}
