// The start-wait file beside the control socket (agent/daemon/start_wait_file.*).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "start_wait_file.hpp"

using namespace nlb;

namespace {
std::string tempdir() {
    char templ[] = "/tmp/nlb-swf-XXXXXX";
    REQUIRE(::mkdtemp(templ) != nullptr);
    return templ;
}
std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}
void put(const std::string& p, const std::string& text) {
    std::ofstream(p) << text;
}
} // namespace

TEST_CASE("start wait file: kept and read back") {
    const auto dir = tempdir();
    StartWaitFile f(dir + "/nlb.sock.start_wait");
    CHECK(f.read() == 0);
    CHECK(f.keep(2500).empty());
    CHECK(f.read() == 2500);
    [[maybe_unused]] const int rc = std::system(("rm -rf " + dir).c_str());
}

// The agent runs as root: a symlink planted at the temporary name must not make it write
// through to another file (replay_guard.cpp and reload.cpp open theirs O_NOFOLLOW).
TEST_CASE("start wait file: a symlink at the temporary name is not followed") {
    const auto dir = tempdir();
    const std::string victim = dir + "/victim";
    put(victim, "precious\n");
    REQUIRE(::symlink(victim.c_str(), (dir + "/nlb.sock.start_wait.tmp").c_str()) == 0);
    StartWaitFile f(dir + "/nlb.sock.start_wait");
    f.keep(2500);
    CHECK(slurp(victim) == "precious\n");
    [[maybe_unused]] const int rc = std::system(("rm -rf " + dir).c_str());
}

// Not a number the agent wrote ("2500" and a newline): garbage is nothing kept.
TEST_CASE("start wait file: a number followed by garbage is not a number") {
    const auto dir = tempdir();
    put(dir + "/nlb.sock.start_wait", "2500xyz\n");
    StartWaitFile f(dir + "/nlb.sock.start_wait");
    CHECK(f.read() == 0);
    [[maybe_unused]] const int rc = std::system(("rm -rf " + dir).c_str());
}

// A FIFO (or anything else that is not a regular file) must not block the agent's start.
TEST_CASE("start wait file: a FIFO at the path does not block the read") {
    const auto dir = tempdir();
    REQUIRE(::mkfifo((dir + "/nlb.sock.start_wait").c_str(), 0600) == 0);
    const pid_t child = ::fork();
    if (child == 0) {
        alarm(2);
        StartWaitFile f(dir + "/nlb.sock.start_wait");
        ::_exit(f.read() == 0 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    [[maybe_unused]] const int rc = std::system(("rm -rf " + dir).c_str());
}
