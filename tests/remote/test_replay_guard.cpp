// The replay memory: a nonce passes once within the window, the table never grows past its
// capacity, and room comes back only as entries leave the window.
#include <catch2/catch.hpp>

#include "replay_guard.hpp"

using namespace nlb::remote;

namespace {

Nonce nonce(std::uint32_t n) {
    Nonce out{};
    for (int i = 0; i < 4; ++i)
        out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
    out[15] = 0x5a;
    return out;
}

constexpr std::int64_t kWindow = 30000;
constexpr std::int64_t kNow = 1'700'000'000'000;

} // namespace

TEST_CASE("a nonce passes once, a second copy is a replay") {
    ReplayGuard g(kWindow);
    CHECK(g.check(nonce(1), kNow, kNow) == ReplayGuard::Verdict::fresh);
    CHECK(g.check(nonce(1), kNow, kNow) == ReplayGuard::Verdict::replay);
    CHECK(g.check(nonce(1), kNow, kNow + kWindow) == ReplayGuard::Verdict::replay);
    CHECK(g.check(nonce(2), kNow, kNow) == ReplayGuard::Verdict::fresh);
    CHECK(g.size() == 2);
}

TEST_CASE("full of in-window nonces: new ones are refused, the table does not grow") {
    ReplayGuard g(kWindow, 8);
    for (std::uint32_t i = 0; i < 8; ++i)
        REQUIRE(g.check(nonce(i), kNow, kNow) == ReplayGuard::Verdict::fresh);
    for (std::uint32_t i = 8; i < 100; ++i)
        CHECK(g.check(nonce(i), kNow, kNow + kWindow) == ReplayGuard::Verdict::full);
    CHECK(g.size() == 8);
    // The remembered ones are still replays, full or not.
    CHECK(g.check(nonce(3), kNow, kNow) == ReplayGuard::Verdict::replay);
}

TEST_CASE("room comes back when entries leave the window, and only those") {
    ReplayGuard g(kWindow, 4);
    // Timestamps 0, 1000, 2000, 3000 ms after kNow: they expire one by one.
    for (std::uint32_t i = 0; i < 4; ++i)
        REQUIRE(g.check(nonce(i), kNow + 1000 * i, kNow + 1000 * i) == ReplayGuard::Verdict::fresh);
    const std::int64_t first_gone = kNow + kWindow + 1; // nonce(0) can no longer pass
    CHECK(g.check(nonce(10), first_gone, first_gone) == ReplayGuard::Verdict::fresh);
    CHECK(g.size() == 4);
    CHECK(g.check(nonce(11), first_gone, first_gone) == ReplayGuard::Verdict::full);
    CHECK(g.check(nonce(1), kNow + 1000, first_gone) == ReplayGuard::Verdict::replay);
    const std::int64_t later = kNow + 2000 + kWindow + 1; // nonce(1), nonce(2) gone
    CHECK(g.check(nonce(12), later, later) == ReplayGuard::Verdict::fresh);
    CHECK(g.check(nonce(13), later, later) == ReplayGuard::Verdict::fresh);
    CHECK(g.check(nonce(14), later, later) == ReplayGuard::Verdict::full);
    CHECK(g.size() == 4);
}

TEST_CASE("a request stamped in the future is remembered until its own window ends") {
    ReplayGuard g(kWindow, 1);
    const std::int64_t ahead = kNow + kWindow; // the latest timestamp that passes now
    REQUIRE(g.check(nonce(1), ahead, kNow) == ReplayGuard::Verdict::fresh);
    // At kNow + 2 windows the copy still passes the timestamp check: still remembered.
    CHECK(g.check(nonce(2), kNow, kNow + 2 * kWindow) == ReplayGuard::Verdict::full);
    CHECK(g.check(nonce(1), ahead, kNow + 2 * kWindow) == ReplayGuard::Verdict::replay);
    CHECK(g.check(nonce(2), kNow + 2 * kWindow + 1, kNow + 2 * kWindow + 1) ==
          ReplayGuard::Verdict::fresh);
}
