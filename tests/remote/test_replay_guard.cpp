// The replay memory: a nonce passes once within the window, the table never grows past its
// capacity, and room comes back only as entries leave the window; with a state file, what a
// guard accepted is refused by the next one (a restarted agent).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <string>

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
constexpr std::int64_t kT0 = 1'700'000'000'000;

// A fresh state file path, removed (with its temporary) when the test ends.
struct StateFile {
    std::string path = "/tmp/nlb-test-replay-" + std::to_string(::getpid());
    StateFile() { remove(); }
    ~StateFile() { remove(); }
    void remove() const {
        ::unlink(path.c_str());
        ::unlink((path + ".tmp").c_str());
    }
    std::string text() const {
        std::ifstream in(path);
        std::ostringstream s;
        s << in.rdbuf();
        return s.str();
    }
    void write(const std::string& text) const { std::ofstream(path) << text; }
};

} // namespace

TEST_CASE("a nonce passes once, a second copy is a replay") {
    ReplayGuard g(kWindow);
    CHECK(g.check(nonce(1), kT0, kT0) == ReplayGuard::Verdict::fresh);
    CHECK(g.check(nonce(1), kT0, kT0) == ReplayGuard::Verdict::replay);
    CHECK(g.check(nonce(1), kT0, kT0 + kWindow) == ReplayGuard::Verdict::replay);
    CHECK(g.check(nonce(2), kT0, kT0) == ReplayGuard::Verdict::fresh);
    CHECK(g.size() == 2);
}

TEST_CASE("full of in-window nonces: new ones are refused, the table does not grow") {
    ReplayGuard g(kWindow, 8);
    for (std::uint32_t i = 0; i < 8; ++i)
        REQUIRE(g.check(nonce(i), kT0, kT0) == ReplayGuard::Verdict::fresh);
    for (std::uint32_t i = 8; i < 100; ++i)
        CHECK(g.check(nonce(i), kT0, kT0 + kWindow) == ReplayGuard::Verdict::full);
    CHECK(g.size() == 8);
    // The remembered ones are still replays, full or not.
    CHECK(g.check(nonce(3), kT0, kT0) == ReplayGuard::Verdict::replay);
}

TEST_CASE("room comes back when entries leave the window, and only those") {
    ReplayGuard g(kWindow, 4);
    // Timestamps 0, 1000, 2000, 3000 ms after kT0: they expire one by one.
    for (std::uint32_t i = 0; i < 4; ++i)
        REQUIRE(g.check(nonce(i), kT0 + 1000 * i, kT0 + 1000 * i) == ReplayGuard::Verdict::fresh);
    const std::int64_t first_gone = kT0 + kWindow + 1; // nonce(0) can no longer pass
    CHECK(g.check(nonce(10), first_gone, first_gone) == ReplayGuard::Verdict::fresh);
    CHECK(g.size() == 4);
    CHECK(g.check(nonce(11), first_gone, first_gone) == ReplayGuard::Verdict::full);
    CHECK(g.check(nonce(1), kT0 + 1000, first_gone) == ReplayGuard::Verdict::replay);
    const std::int64_t later = kT0 + 2000 + kWindow + 1; // nonce(1), nonce(2) gone
    CHECK(g.check(nonce(12), later, later) == ReplayGuard::Verdict::fresh);
    CHECK(g.check(nonce(13), later, later) == ReplayGuard::Verdict::fresh);
    CHECK(g.check(nonce(14), later, later) == ReplayGuard::Verdict::full);
    CHECK(g.size() == 4);
}

TEST_CASE("a request stamped in the future is remembered until its own window ends") {
    ReplayGuard g(kWindow, 1);
    const std::int64_t ahead = kT0 + kWindow; // the latest timestamp that passes now
    REQUIRE(g.check(nonce(1), ahead, kT0) == ReplayGuard::Verdict::fresh);
    // At kT0 + 2 windows the copy still passes the timestamp check: still remembered.
    CHECK(g.check(nonce(2), kT0, kT0 + 2 * kWindow) == ReplayGuard::Verdict::full);
    CHECK(g.check(nonce(1), ahead, kT0 + 2 * kWindow) == ReplayGuard::Verdict::replay);
    CHECK(g.check(nonce(2), kT0 + 2 * kWindow + 1, kT0 + 2 * kWindow + 1) ==
          ReplayGuard::Verdict::fresh);
}

TEST_CASE("a restart: the new guard refuses a copy of what the old one accepted") {
    StateFile state;
    // Sender's clock 20 s ahead of ours: the case the start alone would not cover.
    const std::int64_t stamped = kT0 + 20000;
    {
        ReplayGuard before(kWindow, state.path, kT0 - 60000);
        REQUIRE(before.check(nonce(1), stamped, kT0) == ReplayGuard::Verdict::fresh);
        CHECK(state.text() == std::to_string(stamped) + "\n");
    }
    // The agent restarts 2 s later; the copy is still inside the window (20 s ahead, 30 s).
    ReplayGuard after(kWindow, state.path, kT0 + 2000);
    CHECK(after.load_error().empty());
    CHECK(after.floor() == stamped);
    CHECK(after.check(nonce(1), stamped, kT0 + 2000) == ReplayGuard::Verdict::before_start);
    // Another request stamped as early, never seen: refused too (the guard cannot tell).
    CHECK(after.check(nonce(2), stamped - 1, kT0 + 2000) == ReplayGuard::Verdict::before_start);
    // Anything newer passes, once.
    CHECK(after.check(nonce(3), stamped + 1, kT0 + 2000) == ReplayGuard::Verdict::fresh);
    CHECK(after.check(nonce(3), stamped + 1, kT0 + 2000) == ReplayGuard::Verdict::replay);
    CHECK(state.text() == std::to_string(stamped + 1) + "\n");
}

TEST_CASE("the start is the floor when nothing later was saved, or the file is missing") {
    StateFile state;
    ReplayGuard first(kWindow, state.path, kT0);
    CHECK(first.load_error().empty()); // missing is not an error: a first start
    CHECK(first.floor() == kT0);
    CHECK(first.check(nonce(1), kT0, kT0) == ReplayGuard::Verdict::before_start);
    CHECK(first.check(nonce(2), kT0 - 5000, kT0) == ReplayGuard::Verdict::before_start);
    CHECK(first.check(nonce(3), kT0 + 1, kT0 + 10) == ReplayGuard::Verdict::fresh);

    // A saved timestamp older than the start: the start wins.
    state.write(std::to_string(kT0 - 100000) + "\n");
    ReplayGuard later(kWindow, state.path, kT0);
    CHECK(later.floor() == kT0);
}

TEST_CASE("only timestamps above the saved one are written; older fresh ones are not") {
    StateFile state;
    ReplayGuard g(kWindow, state.path, kT0);
    REQUIRE(g.check(nonce(1), kT0 + 5000, kT0) == ReplayGuard::Verdict::fresh);
    // Another admin box, its clock 3 s behind: fresh, and the file keeps the newest.
    REQUIRE(g.check(nonce(2), kT0 + 2000, kT0) == ReplayGuard::Verdict::fresh);
    CHECK(state.text() == std::to_string(kT0 + 5000) + "\n");
}

TEST_CASE("a damaged or oversized state file: ignored, said why, the start is the floor") {
    StateFile state;
    for (const std::string& text :
         {std::string("not a number\n"), std::string(""), std::string("12 34\n"),
          std::string(100, '7'), std::string("99999999999999999999999\n")}) {
        CAPTURE(text);
        state.write(text);
        ReplayGuard g(kWindow, state.path, kT0);
        CHECK(g.load_error() == state.path + ": not a number");
        CHECK(g.floor() == kT0);
        // The next request writes it anew.
        REQUIRE(g.check(nonce(1), kT0 + 1, kT0) == ReplayGuard::Verdict::fresh);
        CHECK(state.text() == std::to_string(kT0 + 1) + "\n");
        state.remove();
    }
}

TEST_CASE("the state file is replaced whole and private, its temporary never left behind") {
    StateFile state;
    ReplayGuard g(kWindow, state.path, kT0);
    for (std::uint32_t i = 1; i <= 20; ++i)
        REQUIRE(g.check(nonce(i), kT0 + i, kT0) == ReplayGuard::Verdict::fresh);
    CHECK(state.text() == std::to_string(kT0 + 20) + "\n");
    struct stat st {};
    REQUIRE(::stat(state.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(::access((state.path + ".tmp").c_str(), F_OK) != 0);
}

TEST_CASE("a floor that cannot be saved: the request is not remembered and must not run") {
    ReplayGuard g(kWindow, "/nonexistent/dir/nlb.sock.replay", kT0);
    CHECK(g.check(nonce(1), kT0 + 1, kT0) == ReplayGuard::Verdict::unsaved);
    CHECK(g.size() == 0);
    CHECK(g.save_error() == "/nonexistent/dir/nlb.sock.replay.tmp: No such file or directory");
    // Still refused on a second try: nothing was saved.
    CHECK(g.check(nonce(1), kT0 + 1, kT0) == ReplayGuard::Verdict::unsaved);
}

TEST_CASE("a RAM-only guard has no floor and writes nothing") {
    ReplayGuard g(kWindow);
    CHECK(g.check(nonce(1), 0, 0) == ReplayGuard::Verdict::fresh);
    CHECK(g.check(nonce(2), -kWindow, 0) == ReplayGuard::Verdict::fresh);
}

TEST_CASE("a FIFO at the state file's temporary name: refused at once, never blocks") {
    StateFile state;
    const std::string tmp = state.path + ".tmp";
    REQUIRE(::mkfifo(tmp.c_str(), 0600) == 0);
    ReplayGuard g(kWindow, state.path, kT0);
    auto verdict = std::async(std::launch::async, [&] { return g.check(nonce(1), kT0 + 1, kT0); });
    if (verdict.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
        // Blocked in open(): a reader lets it go on (the write then fills the pipe's buffer).
        const int reader = ::open(tmp.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        verdict.wait();
        ::close(reader);
        FAIL("saving the floor blocked on a FIFO at " + tmp);
    }
    CHECK(verdict.get() == ReplayGuard::Verdict::unsaved);
    CHECK(g.save_error() == tmp + ": not a regular file");
    CHECK(g.size() == 0);
    // Not ours to remove, and still a FIFO: nothing was written through it or renamed over.
    struct stat st {};
    REQUIRE(::lstat(tmp.c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    CHECK(::access(state.path.c_str(), F_OK) != 0);
}
