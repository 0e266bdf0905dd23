// A BPF test that attaches: a network namespace of its own (its `lo` takes the program), a
// pin directory on the bpffs at /sys/fs/bpf, and, at the end, the way back to the test's
// namespace with the pins gone (pins a failed check left behind would keep the program alive).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

namespace nlb::test {

struct PrivateNetns {
    int home = -1;
    std::string pin_dir;
    explicit PrivateNetns(const std::string& name)
        : pin_dir("/sys/fs/bpf/nlb-test-" + name + "-" + std::to_string(getpid())) {
        home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        REQUIRE(home >= 0);
        REQUIRE(unshare(CLONE_NEWNET) == 0);
    }
    ~PrivateNetns() {
        std::error_code ec;
        std::filesystem::remove_all(pin_dir, ec);
        setns(home, CLONE_NEWNET); // the namespace goes with its last user
        close(home);
    }
    PrivateNetns(const PrivateNetns&) = delete;
    PrivateNetns& operator=(const PrivateNetns&) = delete;
};

} // namespace nlb::test
