#include "thread_schedstat.hpp"

#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

namespace nlb {

ThreadSchedStat::ThreadSchedStat()
    : fd_(::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) {}

ThreadSchedStat::~ThreadSchedStat() {
    if (fd_ >= 0)
        ::close(fd_);
}

std::optional<SchedSample> ThreadSchedStat::read() const {
    if (fd_ < 0)
        return std::nullopt;
    char buf[96];
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return std::nullopt;
    buf[n] = '\0';
    unsigned long long ran = 0, waited = 0;
    if (std::sscanf(buf, "%llu %llu", &ran, &waited) != 2)
        return std::nullopt;
    return SchedSample{ran, waited};
}

SchedShare sched_share(const SchedSample& from, const SchedSample& to, std::uint64_t over_ms) {
    auto ms = [](std::uint64_t a, std::uint64_t b) { return b > a ? (b - a) / 1000000 : 0; };
    return {over_ms, ms(from.ran_ns, to.ran_ns), ms(from.waited_ns, to.waited_ns)};
}

} // namespace nlb
