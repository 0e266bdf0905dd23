// A cgroup2 directory of its own for one run of an exec command (a probe, a load-feedback
// sample), under the agent's own cgroup: whatever the command starts stays in it, also what
// leaves its process group (setsid, a daemon that double-forks), and cgroup.kill (Linux
// 5.14) ends all of it at once when the command ends or times out. Without a writable
// cgroup2 (an older kernel, a read-only /sys/fs/cgroup) there is none, and the process group
// is all that is killed, as before; isolation() says which, for the agent's log.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

namespace nlb {

class ProbeCgroup {
  public:
    // A new, empty cgroup, or nullptr when none can be made (isolation() says why).
    static std::unique_ptr<ProbeCgroup> create();
    // "cgroup2 DIR" or "process group only: REASON", once the first create() has tried.
    static std::string isolation();
    // DIR, the agent's own cgroup under which each run gets one, while cgroups are in use.
    static std::optional<std::string> directory();
    // Cgroups left by an agent that died (their commands still running): killed and removed.
    // What cannot be removed yet is tried again later.
    static void sweep_stale();
    // At the agent's start: sweep_stale, then one cgroup made and removed, so that
    // isolation() says what the commands will get before the first one runs.
    static std::string prepare();

    ProbeCgroup(const ProbeCgroup&) = delete;
    ProbeCgroup& operator=(const ProbeCgroup&) = delete;
    // Kills what is still in it and removes it (later, if its processes are still dying).
    ~ProbeCgroup();

    // Open for writing before fork: the child writes "0" to move itself in before it
    // execs (async-signal-safe), the parent the child's PID, whichever comes first.
    int procs_fd() const { return procs_fd_; }
    // True when `pid` is in it now (moved here, or by itself first) or has exited already:
    // only then does kill() reach it.
    bool adopt(pid_t pid) const;
    // Every process in it, SIGKILL, whoever's it is (no per-process permission needed).
    void kill() const;

  private:
    // sweep_stale; `own_too`: also those named after this agent's PID (at its start).
    static void sweep(bool own_too);
    ProbeCgroup(std::string dir, int procs_fd, int kill_fd)
        : dir_(std::move(dir)), procs_fd_(procs_fd), kill_fd_(kill_fd) {}
    std::string dir_;
    int procs_fd_ = -1;
    int kill_fd_ = -1;
};

} // namespace nlb
