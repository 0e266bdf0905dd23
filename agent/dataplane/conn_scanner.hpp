// Reads the dataplane's connection tables: which (rule, bucket) pairs still hold live
// connections on this host (what makes a bucket this host lost "dirty"), forgets established
// connections whose socket closed longer than the grace period ago and, while the socket
// program runs, opening records that were never established.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dataplane_maps.hpp"

struct conn_scan_bpf;
struct bpf_link;

namespace nlb {

class ConnFilter;

struct ConnScan {
    // live_buckets[rule slot][bucket]: a bitmap, not a set: a full table's half a million
    // entries cost a bit each, not a tree insertion (a tenth of a full scan's CPU).
    std::array<std::bitset<NLB_BUCKETS>, NLB_RULE_SLOTS> live_buckets{};
    std::uint64_t live = 0; // connections still counted (both tables)
    std::array<std::uint64_t, NLB_RULE_SLOTS> live_by_rule{}; // the same, per rule slot
    std::uint64_t opening = 0;         // entries in the opening tables (both families)
    std::uint64_t established = 0;     // entries in the established tables (both families)
    std::uint64_t closing = 0;         // established ones whose socket closed, in their grace
    std::uint64_t expired = 0;         // established ones removed by this scan (socket closed)
    std::uint64_t opening_expired = 0; // opening ones removed: never established in time
    // False when reading a table failed before its end (a batch read's error): the counts and
    // live buckets are then a part of the truth, and a release must not judge by them.
    bool complete = true;
    int error = 0; // the errno of the read that failed
};

// Scans in the kernel: map iterator programs (bpf/conn_scan.bpf.c) attached to the four
// tables count and mark every record where it lies and hand out only the keys of records to
// delete: 0.5-0.6 of the CPU of copying the tables out (scripts/bench/conn-scan.sh; what is
// left is mostly two cache misses a record). Not consistent within a hash bucket while the
// tables change (docs/dataplane.md, "Two ways to scan"): for scans whose result decides
// nothing. Where the kernel cannot run them (before 5.9, no BTF), or a run fails, it copies
// the tables out instead (scan_by_copy) and error() says why.
class ConnScanner {
  public:
    // Never throws: a scanner whose iterators did not load copies.
    explicit ConnScanner(const DataplaneMaps& maps);
    ~ConnScanner();
    ConnScanner(const ConnScanner&) = delete;
    ConnScanner& operator=(const ConnScanner&) = delete;

    // `now_ns`: CLOCK_MONOTONIC (the clock the dataplane stamps with, coarse). `age_opening`:
    // the socket program runs, so an opening record older than NLB_OPENING_MAX_AGE_NS will
    // never be established; without it the opening table is all there is and only the LRU
    // evicts.
    ConnScan scan(std::uint64_t now_ns, bool age_opening);
    bool in_kernel() const { return skel_ != nullptr; }
    const DataplaneMaps& maps() const { return maps_; }
    const std::string& error() const { return error_; } // why not in the kernel ("": it is)

  private:
    // false: an iterator failed (error_ says how)
    bool scan_in_kernel(ConnScan& out, std::uint64_t now_ns, bool age_opening);
    void unload();

    const DataplaneMaps& maps_;
    conn_scan_bpf* skel_ = nullptr;
    // opening4, established4, opening6, established6: the order scans read the tables in
    std::array<bpf_link*, 4> links_{};
    std::string error_;
};

// Whether this kernel refuses map iterator programs to this process as such: a program that
// only returns 0 is refused with EPERM before the verifier runs. Some kernels' policy does
// so even for root (this project's test machines' since 2026-12-02); the scanner then copies
// and says so, and the tests check the copy there. A probe of its own for the tests: the
// scanner tells by its load's EPERM.
bool kernel_refuses_iterators();

// Which families' tables a scan walks; the others are known to hold nothing
// (ConnFilter::holds_nothing), and what it finds there is nothing.
struct ScanFamilies {
    bool v4 = true;
    bool v6 = true;
};

// The families a scan must walk: those whose tables the filter does not show empty.
ScanFamilies families_to_walk(const ConnFilter& filter);

// The same scan by copying every record out (batched lookups): the fallback, and the
// baseline the benchmark holds the iterators against.
ConnScan scan_by_copy(const DataplaneMaps& maps, std::uint64_t now_ns, bool age_opening,
                      ScanFamilies families = {});

// Ends the established records (as if their socket had closed now) that no socket in
// `sockets` carries and that were recorded before `listed_at_ns`, the time the socket table
// was read: a socket closed while no socket program ran (the agent's predecessor's), or
// whose close it missed. Such a record is ended only if `list_again` (a second reading of
// the socket table, called once, only when there are any) misses its socket too. Returns
// how many.
std::uint64_t end_orphans(const DataplaneMaps& maps, const std::vector<nlb_tuple>& sockets,
                          std::uint64_t listed_at_ns, std::uint64_t now_ns,
                          const std::function<std::vector<nlb_tuple>()>& list_again);

} // namespace nlb
