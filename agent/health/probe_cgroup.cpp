// Where the agent's cgroup is: the "0::" line of /proc/self/cgroup names it within the
// cgroup2 hierarchy, /proc/self/mountinfo where that hierarchy is mounted (/sys/fs/cgroup on
// a unified host, /sys/fs/cgroup/unified on a hybrid one). Each run gets a directory named
// after the agent's PID and a sequence number, so that agents sharing a cgroup (tests, a
// container without systemd) never touch each other's, and one that died is recognised.
#include "probe_cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

namespace nlb {

namespace {

constexpr const char* kPrefix = "nlb-probe-";
// Directories whose processes were still dying at removal, tried again at each create().
// Bounded: a kernel that never lets one go must not grow the agent.
constexpr std::size_t kPendingMax = 64;

struct State {
    std::mutex mutex;
    bool tried = false;
    std::optional<std::string> base; // the agent's own cgroup directory, when usable
    std::string rel;                 // its path in the hierarchy (/proc/self/cgroup)
    std::string reason;              // why not
    unsigned long sequence = 0;
    std::deque<std::string> pending;
};

State& state() {
    static State s;
    return s;
}

// The "0::" line of /proc/PID/cgroup: the process's cgroup2 path; nullopt without one.
std::optional<std::string> cgroup2_path(const std::string& proc) {
    std::ifstream cg(proc + "/cgroup");
    std::string line;
    while (std::getline(cg, line))
        if (line.rfind("0::", 0) == 0)
            return line.substr(3);
    return std::nullopt;
}

std::optional<std::string> own_cgroup(std::string& rel, std::string& why) {
    const auto path = cgroup2_path("/proc/self");
    if (!path) {
        why = "no cgroup2 hierarchy in /proc/self/cgroup";
        return std::nullopt;
    }
    rel = *path;
    std::ifstream mi("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mi, line)) {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        const auto dash = line.find(" - ");
        if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0)
            continue;
        std::istringstream in(line.substr(0, dash));
        std::string id, parent, dev, root, point;
        in >> id >> parent >> dev >> root >> point;
        // A mount of a subtree (a container's): the path is relative to the namespace's root,
        // which is what that mount shows.
        std::string sub = rel;
        if (root != "/" && sub.rfind(root, 0) == 0)
            sub = sub.substr(root.size());
        while (sub.size() > 1 && sub.back() == '/')
            sub.pop_back();
        return point + (sub == "/" ? "" : sub);
    }
    why = "cgroup2 is not mounted";
    return std::nullopt;
}

// Removes the cgroups a command made below its own (one running as root may), deepest
// first: a cgroup with a child cannot be removed. Bounded: the depth a kernel allows is too.
void remove_children(const std::string& dir, int depth) {
    if (depth > 16)
        return;
    DIR* d = ::opendir(dir.c_str());
    if (!d)
        return;
    std::deque<std::string> children;
    while (const dirent* e = ::readdir(d))
        if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") != 0 &&
            std::strcmp(e->d_name, "..") != 0)
            children.push_back(dir + "/" + e->d_name);
    ::closedir(d);
    for (const auto& child : children) {
        remove_children(child, depth + 1);
        ::rmdir(child.c_str());
    }
}

// Kills what is left and removes the directory; false while its processes are still dying.
bool remove_dir(const std::string& dir) {
    const int fd = ::open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        [[maybe_unused]] const auto n = ::write(fd, "1", 1); // the whole subtree
        ::close(fd);
    }
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT)
        return true;
    if (errno != EBUSY && errno != ENOTEMPTY)
        return false;
    remove_children(dir, 0);
    return ::rmdir(dir.c_str()) == 0 || errno == ENOENT;
}

void retry_pending(State& s) {
    for (std::size_t i = s.pending.size(); i-- > 0;)
        if (remove_dir(s.pending[i]))
            s.pending.erase(s.pending.begin() + static_cast<std::ptrdiff_t>(i));
}

void defer(State& s, std::string dir) {
    if (s.pending.size() >= kPendingMax)
        s.pending.pop_front();
    s.pending.push_back(std::move(dir));
}

// Out of descriptors or memory for a moment, or a name left over: not a reason to give up
// cgroups for the agent's life.
bool transient(int e) {
    return e == EEXIST || e == EINTR || e == ENOMEM || e == ENOSPC || e == EMFILE || e == ENFILE ||
           e == EAGAIN;
}

// The agent that made directories under `pid` is gone: no such process, or one in another
// cgroup (the PID used again by something else).
bool gone(pid_t pid, const std::string& rel) {
    if (::kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    const auto path = cgroup2_path("/proc/" + std::to_string(pid));
    return path && *path != rel;
}

void locate(State& s) {
    if (s.tried)
        return;
    s.tried = true;
    s.base = own_cgroup(s.rel, s.reason);
}

} // namespace

std::unique_ptr<ProbeCgroup> ProbeCgroup::create() {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    locate(s);
    if (!s.base)
        return nullptr;
    retry_pending(s);
    const std::string dir =
        *s.base + "/" + kPrefix + std::to_string(::getpid()) + "-" + std::to_string(++s.sequence);
    if (::mkdir(dir.c_str(), 0755) != 0) {
        const int e = errno;
        if (!transient(e)) {
            // Read-only, not ours, or not a cgroup: it stays so for this agent's life.
            s.reason = "mkdir " + dir + ": " + std::strerror(e);
            s.base.reset();
        }
        return nullptr;
    }
    const int procs = ::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    const int killer = ::open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
    if (procs < 0 || killer < 0) {
        const int e = errno;
        if (procs >= 0)
            ::close(procs);
        if (killer >= 0)
            ::close(killer);
        ::rmdir(dir.c_str());
        if (transient(e))
            return nullptr; // this run goes without; the next one tries again
        s.reason = dir + (killer < 0 && e == ENOENT ? ": no cgroup.kill (Linux 5.14)"
                                                    : ": " + std::string(std::strerror(e)));
        s.base.reset();
        return nullptr;
    }
    return std::unique_ptr<ProbeCgroup>(new ProbeCgroup(dir, procs, killer));
}

std::string ProbeCgroup::isolation() {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    if (!s.tried)
        return "not tried yet";
    return s.base ? "cgroup2 " + *s.base : "process group only: " + s.reason;
}

std::optional<std::string> ProbeCgroup::directory() {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    return s.base;
}

void ProbeCgroup::sweep_stale() {
    sweep(false);
}

void ProbeCgroup::sweep(bool own_too) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    locate(s);
    if (!s.base)
        return;
    DIR* d = ::opendir(s.base->c_str());
    if (!d)
        return;
    while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.rfind(kPrefix, 0) != 0)
            continue;
        char* end = nullptr;
        const long pid = std::strtol(name.c_str() + std::strlen(kPrefix), &end, 10);
        if (pid <= 0 || *end != '-')
            continue;
        // Ours from before this agent made any (a container's agent is PID 1 at every
        // start), or an agent's that is gone.
        if (pid == ::getpid() ? !own_too : !gone(static_cast<pid_t>(pid), s.rel))
            continue;
        const std::string dir = *s.base + "/" + name;
        if (!remove_dir(dir))
            defer(s, dir);
    }
    ::closedir(d);
}

std::string ProbeCgroup::prepare() {
    sweep(true);
    create();
    return isolation();
}

ProbeCgroup::~ProbeCgroup() {
    kill();
    ::close(procs_fd_);
    ::close(kill_fd_);
    auto& s = state();
    std::lock_guard lock(s.mutex);
    if (!remove_dir(dir_))
        defer(s, dir_);
}

bool ProbeCgroup::adopt(pid_t pid) const {
    const std::string text = std::to_string(pid);
    return ::write(procs_fd_, text.data(), text.size()) > 0 || errno == ESRCH;
}

void ProbeCgroup::kill() const {
    [[maybe_unused]] const auto n = ::write(kill_fd_, "1", 1);
}

} // namespace nlb
