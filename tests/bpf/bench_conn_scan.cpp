// What one connection scan costs with both IPv4 tables full (the opening and the established
// table, 262,144 records each by default): the agent's CPU time (its own and the kernel's
// work on its behalf) for the scan by copying the records out, the baseline, and for the scan
// by map iterators in the kernel, interleaved over rounds on the same tables; medians.
// `*_cpu_pct_at_2s`: what full tables would cost a host scanning every 2 s, a settled host's
// shortest wait (with full tables it waits 60 s: docs/agent.md). Prints one JSON object on its
// last line.
#include <bpf/bpf.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "conn_scanner.hpp"
#include "dataplane_fixture.hpp"

using namespace nlb;
using namespace nlb::test;

namespace {

double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Fills `fd` with `n` open records spread over every bucket of rule 0 (how many it holds, the
// scans count).
void fill(int fd, std::uint32_t n, std::uint32_t salt, std::uint64_t now) {
    std::vector<nlb_conn_key4> keys(n);
    std::vector<nlb_conn> values(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        keys[i] = {.saddr = 0x0a000000u + i,
                   .daddr = 0xc0a80000u + salt,
                   .sport = std::uint16_t(i),
                   .dport = 443};
        values[i].opened_ns = now;
        values[i].bucket = std::uint16_t(i % NLB_BUCKETS);
    }
    std::uint32_t count = n;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts)) {
        std::perror("bench: fill a connection table");
        std::exit(1);
    }
}

} // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 7;
    DataplaneFixture dp(DataplaneFixture::kObjectSize, DataplaneFixture::kObjectSize);
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t now =
        std::uint64_t(ts.tv_sec) * 1'000'000'000ULL + std::uint64_t(ts.tv_nsec);
    const auto& fds = dp.maps().fds();
    fill(fds.conns4, NLB_CONN_TABLE_ENTRIES, 1, now);
    fill(fds.est4, NLB_EST_TABLE_ENTRIES, 2, now);

    ConnScanner scanner(dp.maps());
    if (!scanner.in_kernel()) {
        std::fprintf(stderr, "bench: the scan programs did not load: %s\n",
                     scanner.error().c_str());
        return 1;
    }
    std::vector<double> copy, kernel;
    std::uint64_t records = 0;
    for (int r = 0; r < rounds; ++r) {
        double start = cpu_ms();
        const ConnScan a = scan_by_copy(dp.maps(), now, true);
        copy.push_back(cpu_ms() - start);
        start = cpu_ms();
        const ConnScan b = scanner.scan(now, true);
        kernel.push_back(cpu_ms() - start);
        if (a.live != b.live || a.live_buckets != b.live_buckets || !scanner.in_kernel()) {
            std::fprintf(stderr, "bench: the two scans disagree (%llu and %llu live)\n",
                         static_cast<unsigned long long>(a.live),
                         static_cast<unsigned long long>(b.live));
            return 1;
        }
        records = b.live;
    }
    const double copy_ms = median(copy), kernel_ms = median(kernel);
    std::printf("{\"records\": %llu, \"copy_ms\": %.2f, \"kernel_ms\": %.2f, "
                "\"kernel_ratio\": %.3f, \"copy_ns_per_record\": %.1f, "
                "\"kernel_ns_per_record\": %.1f, \"copy_cpu_pct_at_2s\": %.2f, "
                "\"kernel_cpu_pct_at_2s\": %.2f}\n",
                static_cast<unsigned long long>(records), copy_ms, kernel_ms, kernel_ms / copy_ms,
                copy_ms * 1e6 / double(records), kernel_ms * 1e6 / double(records),
                copy_ms / 2000 * 100, kernel_ms / 2000 * 100);
    return 0;
}
