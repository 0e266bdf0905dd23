// A test's own network namespace, its loopback up, for the scope of one object: what the test
// sends and reads on loopback meets no other process's traffic (another suite's datagrams on
// ::1, an agent's port 2504 on 127.0.0.1), and what it binds collides with nothing. The thread
// goes back to the namespace it came from at the end.
#pragma once

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <catch2/catch.hpp>

namespace nlb::test {

// Sets `ifname` of this thread's namespace up; false if it cannot.
inline bool set_up(const char* ifname) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    const bool ok = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 &&
                    (ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP),
                     ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0);
    if (fd >= 0)
        ::close(fd);
    return ok;
}

class PrivateNetns {
  public:
    PrivateNetns() : home_(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) {
        REQUIRE(home_ >= 0);
        REQUIRE(::unshare(CLONE_NEWNET) == 0);
        REQUIRE(set_up("lo"));
    }
    ~PrivateNetns() {
        ::setns(home_, CLONE_NEWNET);
        ::close(home_);
    }
    PrivateNetns(const PrivateNetns&) = delete;
    PrivateNetns& operator=(const PrivateNetns&) = delete;

  private:
    int home_;
};

} // namespace nlb::test
