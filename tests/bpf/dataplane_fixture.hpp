// Loads the real compiled XDP object (through its skeleton) and drives it with
// BPF_PROG_TEST_RUN. Maps are filled through the agent's own DataplaneMaps writer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "cluster_mac.hpp"
#include "conn_filter.hpp"
#include "dataplane_maps.hpp"
#include "dataplane_tables.hpp"
#include "packet_builder.hpp"

struct nlb_bpf;

namespace nlb::test {

struct RunResult {
    int action = -1; // XDP_* verdict
    Bytes out;       // the frame as the program left it
};

class DataplaneFixture {
  public:
    // Each opening and established connection table's size; kObjectSize keeps the object's
    // own (262,144). Tests get small tables unless they need more: the kernel takes 170 ms to
    // create the four preallocated LRU tables at the object's size, most of what a fixture
    // costs. Benchmarks measure the object's.
    static constexpr std::uint32_t kTestTableEntries = 16384;
    static constexpr std::uint32_t kObjectSize = 0;
    // Throws std::runtime_error when the object does not load.
    explicit DataplaneFixture(std::uint32_t opening_entries = kTestTableEntries,
                              std::uint32_t established_entries = kTestTableEntries);
    ~DataplaneFixture();
    DataplaneFixture(const DataplaneFixture&) = delete;
    DataplaneFixture& operator=(const DataplaneFixture&) = delete;

    DataplaneMaps& maps() { return *maps_; }
    // Valid once configure() ran (rebuilt from the tables, as the agent does once attached):
    // a record written into a table from here on by anything but the dataplane itself is
    // hidden from it until the next rebuild.
    ConnFilter& conn_filter() { return *filter_; }
    int prog_fd() const;
    // nlb_hb_rate: struct nlb_hb_rate_key → struct nlb_hb_rate.
    int heartbeat_rate_fd() const;
    // nlb_conns4, the IPv4 opening table: struct nlb_conn_key4 → struct nlb_conn.
    int opening4_fd() const;

    static Mac own_mac(std::uint8_t priority) { return {0x02, 0, 0, 0, 0, priority}; }
    // The unicast cluster MAC of `vip` as the cluster IP: where clients send their frames.
    static Mac cluster_mac_of(const IpAddress& vip);

    // Config (own MAC 02:00:00:00:00:<priority>, unicast cluster MAC of the first VIP,
    // watchdog alive), VIP and port tables, and every rule slot with no owner.
    void configure(const DataplaneTables& tables, std::uint8_t priority);
    // Rewrites one rule slot's buckets: entry(bucket) gives owner | NLB_BKT_* flags.
    void set_buckets(std::uint32_t slot, const std::function<std::uint16_t(std::uint16_t)>& entry);
    // Every bucket of `slot` owned by `owner`; flagged NLB_BKT_MINE when that is this host.
    void own_all(std::uint32_t slot, std::uint8_t owner);
    // Runs nlb_watchdog_arm as the agent does: alive for `timeout_ns` from now. Returns the
    // program's verdict (XDP_PASS when armed).
    int arm_watchdog(std::uint64_t timeout_ns);
    // The same with the deadline (CLOCK_MONOTONIC ns) the agent counts from its engine's last
    // look: XDP_DROP, and the dataplane stopped, when it has passed.
    int arm_watchdog_until(std::uint64_t deadline_ns, std::uint64_t timeout_ns);
    void set_alive(bool alive);

    RunResult run(const Bytes& frame);
    // Runs nlb_seed as the agent does for a connection its stack already has: XDP_PASS when
    // recorded as established (or none of the rules'), XDP_DROP when the table is full.
    int seed(const nlb_tuple& t);
    // Runs `frame` through the TC egress program (nlb_nd_egress) as an outgoing skb; action
    // is its TC_ACT_* verdict.
    RunResult run_egress(const Bytes& frame);
    // How many calls of BPF helper `func_id` (BPF_FUNC_*) the egress program makes, in the
    // instructions as loaded.
    std::size_t egress_helper_calls(int func_id) const;
    // Mean ns per run of `repeat` runs of the frame, as the kernel timed them.
    double time_ns(const Bytes& frame, std::uint32_t repeat);

    std::uint8_t priority() const { return priority_; }
    const DataplaneTables* tables() const { return tables_; }

  private:
    nlb_bpf* skel_ = nullptr;
    std::unique_ptr<DataplaneMaps> maps_;
    std::unique_ptr<ConnFilter> filter_;
    std::uint8_t priority_ = 1;
    const DataplaneTables* tables_ = nullptr;
};

// The kernel's own timing of `repeat` runs of `frame` through a program: the mean ns per run,
// time spent rescheduled excluded (a wall clock around the call picks up every preemption of
// a busy machine).
double test_run_ns(int prog_fd, const Bytes& frame, std::uint32_t repeat);

// Runs `frame` through the bare XDP program (the benchmark floor).
double bare_time_ns(const Bytes& frame, std::uint32_t repeat);

} // namespace nlb::test
