// The socket program's life beside the XDP program (bpf/sockops.h): attached to the root
// cgroup through a pinned link, so that it keeps recording while no agent runs, as the XDP
// link keeps filtering; replaced in place by a restarted agent; gone with a detach.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "dataplane_loader.hpp"
#include "errstr.hpp"
#include "nlb.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace nlb {

namespace {

// Where the cgroup v2 hierarchy is mounted ("" when it is not): its root covers every socket
// of the machine.
std::string cgroup2_mount() {
    std::ifstream mounts("/proc/self/mounts");
    std::string line;
    while (std::getline(mounts, line)) {
        std::istringstream in(line);
        std::string dev, dir, type;
        in >> dev >> dir >> type;
        if (type == "cgroup2")
            return dir;
    }
    return {};
}

// The root of the cgroup v2 hierarchy, opened. Where this mount namespace shows none (a
// hybrid v1 host; `ip netns exec`, which remounts /sys), a private mount of it is opened and
// at once detached: the descriptor keeps the root, nothing stays mounted. `where` names it
// for errors.
int open_cgroup2_root(std::string& where, std::string& error) {
    where = cgroup2_mount();
    if (!where.empty()) {
        int fd = open(where.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            error = "open " + where + ": " + std::strerror(errno);
        return fd;
    }
    char dir[] = "/tmp/nlb-cgroup2.XXXXXX";
    if (!mkdtemp(dir)) {
        error = std::string("no cgroup v2 mount, and a directory to mount one: ") +
                std::strerror(errno);
        return -1;
    }
    where = "cgroup2 (private mount)";
    int fd = -1;
    if (mount("cgroup2", dir, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
        error = std::string("no cgroup v2 mount, and mounting one: ") + std::strerror(errno);
    } else {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            error = std::string("open the cgroup v2 root: ") + std::strerror(errno);
        umount2(dir, MNT_DETACH);
    }
    rmdir(dir);
    return fd;
}

// The cookie of this process's network namespace: the one the interface and its sockets are in.
std::uint64_t netns_cookie(std::string& error) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return 0;
    }
    std::uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
        error = std::string("SO_NETNS_COOKIE: ") + std::strerror(errno) + " (kernel before 5.14)";
        cookie = 0;
    }
    close(fd);
    return cookie;
}

} // namespace

void Dataplane::start_socket_program() {
    sockops_error_.clear();
    const std::string pin = pin_dir_ + "/" + kSockopsPin;
    int fd = bpf_obj_get(pin.c_str()); // a predecessor's link, or -1
    // Whatever fails leaves no socket program: neither a predecessor's, which would record
    // into these tables with its own connection filter (not the one this dataplane reads,
    // which would then hide those connections: docs/dataplane.md), nor the cookie, which
    // tells the XDP program that established connections leave the opening table.
    const auto give_up = [&](int link_fd) {
        sockops_fd_ = link_fd;
        stop_socket_program();
    };
    std::uint64_t cookie = netns_cookie(sockops_error_);
    if (!cookie)
        return give_up(fd);
    // Before the program can run: it records nothing while the cookie is 0. Set only while
    // it runs: the XDP program then holds opening records to their SYN's first window,
    // which only the socket program's move of established connections makes safe.
    maps_->state().config.netns_cookie = cookie;
    int prog_fd = bpf_program__fd(skel_->progs.nlb_sockops);
    if (fd >= 0) {
        if (int err = bpf_link_update(fd, prog_fd, nullptr)) {
            sockops_error_ = "replace the socket program: " + errstr(err);
            return give_up(fd);
        }
        sockops_fd_ = fd;
        return;
    }
    std::string root;
    int cg = open_cgroup2_root(root, sockops_error_);
    if (cg < 0)
        return give_up(-1);
    fd = bpf_link_create(prog_fd, cg, BPF_CGROUP_SOCK_OPS, nullptr);
    close(cg);
    if (fd < 0) {
        sockops_error_ = "attach the socket program to " + root + ": " + errstr(fd);
        return give_up(-1);
    }
    if (int err = bpf_obj_pin(fd, pin.c_str())) {
        sockops_error_ = "pin the socket program's link at " + pin + ": " + errstr(err);
        return give_up(fd);
    }
    sockops_fd_ = fd;
}

void Dataplane::stop_socket_program() {
    if (maps_)
        maps_->state().config.netns_cookie = 0;
    std::string pin = pin_dir_ + "/" + kSockopsPin;
    unlink(pin.c_str());
    if (sockops_fd_ >= 0) {
        bpf_link_detach(sockops_fd_);
        close(sockops_fd_);
        sockops_fd_ = -1;
    }
}

SeedResult Dataplane::seed_established(std::span<const nlb_tuple> connections) {
    SeedResult r;
    int prog_fd = bpf_program__fd(skel_->progs.nlb_seed);
    for (const nlb_tuple& t : connections) {
        // XDP test runs want at least an Ethernet header's worth of data
        std::uint8_t frame[sizeof(nlb_tuple) < 64 ? 64 : sizeof(nlb_tuple)] = {};
        std::memcpy(frame, &t, sizeof(t));
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame));
        if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
            continue;
        if (opts.retval == XDP_PASS)
            ++r.recorded;
        else if (opts.retval == XDP_DROP)
            ++r.full;
    }
    return r;
}

} // namespace nlb
