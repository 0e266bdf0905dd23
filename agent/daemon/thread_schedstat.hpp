// How much CPU the calling thread got, and how long it waited for one: the kernel's schedstat
// of the thread (/proc/thread-self/schedstat: time on a CPU, time runnable on a run queue,
// both in ns). A stall's log line says from it whether the agent was busy (its own work), kept
// off the CPUs (a busy machine, a CPU quota: runnable, not run) or blocked (a pause, a
// syscall), which is the difference between a defect and the host's load (docs/agent.md).
#pragma once

#include <cstdint>
#include <optional>

namespace nlb {

struct SchedSample {
    std::uint64_t ran_ns = 0;    // on a CPU
    std::uint64_t waited_ns = 0; // runnable, waiting for a CPU (or throttled by a CPU quota)
};

class ThreadSchedStat {
  public:
    // Opens the calling thread's file; read() is then for that thread whatever calls it.
    // Without it (a kernel without CONFIG_SCHED_INFO), read() gives nothing.
    ThreadSchedStat();
    ~ThreadSchedStat();
    ThreadSchedStat(const ThreadSchedStat&) = delete;
    ThreadSchedStat& operator=(const ThreadSchedStat&) = delete;

    std::optional<SchedSample> read() const;

  private:
    int fd_ = -1;
};

// "ran R ms and waited W ms for a CPU of the last G ms": from two samples G ms apart.
struct SchedShare {
    std::uint64_t over_ms = 0;
    std::uint64_t ran_ms = 0;
    std::uint64_t waited_ms = 0;
};
SchedShare sched_share(const SchedSample& from, const SchedSample& to, std::uint64_t over_ms);

} // namespace nlb
