#include "dataplane_fixture.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <time.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "bare.skel.h"
#include "nlb.skel.h"

namespace nlb::test {

namespace {

RunResult test_run(int prog_fd, const Bytes& frame) {
    RunResult r;
    r.out.resize(frame.size() + 512);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_out = r.out.data(), .data_size_in = static_cast<__u32>(frame.size()),
                .data_size_out = static_cast<__u32>(r.out.size()), .repeat = 1);
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts))
        throw std::runtime_error("BPF_PROG_TEST_RUN: " + std::string(strerror(-err)));
    r.action = static_cast<int>(opts.retval);
    r.out.resize(opts.data_size_out);
    return r;
}

} // namespace

double test_run_ns(int prog_fd, const Bytes& frame, std::uint32_t repeat) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<__u32>(frame.size()),
                .repeat = static_cast<int>(repeat));
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts))
        throw std::runtime_error("BPF_PROG_TEST_RUN: " + std::string(strerror(-err)));
    return opts.duration;
}

DataplaneFixture::DataplaneFixture(std::uint32_t opening_entries,
                                   std::uint32_t established_entries) {
    skel_ = nlb_bpf__open();
    if (!skel_)
        throw std::runtime_error("open nlb.bpf.o: " + std::string(strerror(errno)));
    if (opening_entries != kObjectSize) {
        bpf_map__set_max_entries(skel_->maps.nlb_conns4, opening_entries);
        bpf_map__set_max_entries(skel_->maps.nlb_conns6, opening_entries);
    }
    if (established_entries != kObjectSize) {
        bpf_map__set_max_entries(skel_->maps.nlb_est4, established_entries);
        bpf_map__set_max_entries(skel_->maps.nlb_est6, established_entries);
    }
    const std::uint32_t filter_entries =
        ConnFilter::entries_for(bpf_map__max_entries(skel_->maps.nlb_conns4),
                                bpf_map__max_entries(skel_->maps.nlb_est4));
    bpf_map__set_max_entries(skel_->maps.nlb_conn_filter, filter_entries);
    if (int err = nlb_bpf__load(skel_)) {
        nlb_bpf__destroy(skel_);
        throw std::runtime_error("load nlb.bpf.o: " + std::string(strerror(-err)));
    }
    maps_ = std::make_unique<DataplaneMaps>(DataplaneMapFds{
        bpf_map__fd(skel_->maps.bss), bpf_map__fd(skel_->maps.nlb_ports),
        bpf_map__fd(skel_->maps.nlb_conns4), bpf_map__fd(skel_->maps.nlb_conns6),
        bpf_map__fd(skel_->maps.nlb_stats), bpf_map__fd(skel_->maps.nlb_est4),
        bpf_map__fd(skel_->maps.nlb_est6), bpf_map__fd(skel_->maps.nlb_hb_trusted),
        bpf_map__fd(skel_->maps.nlb_hb_untrusted)});
    filter_ = std::make_unique<ConnFilter>(bpf_map__fd(skel_->maps.nlb_conn_filter),
                                           filter_entries);
}

DataplaneFixture::~DataplaneFixture() {
    maps_.reset(); // unmap before the skeleton closes the map
    filter_.reset();
    nlb_bpf__destroy(skel_);
}

int DataplaneFixture::prog_fd() const { return bpf_program__fd(skel_->progs.nlb_xdp); }

int DataplaneFixture::heartbeat_rate_fd() const { return bpf_map__fd(skel_->maps.nlb_hb_rate); }

int DataplaneFixture::opening4_fd() const {
    return bpf_map__fd(skel_->maps.nlb_conns4);
}

Mac DataplaneFixture::cluster_mac_of(const IpAddress& vip) {
    return cluster_mac(vip.words[0], ClusterMode::unicast);
}

void DataplaneFixture::configure(const DataplaneTables& tables, std::uint8_t priority) {
    priority_ = priority;
    tables_ = &tables;
    nlb_config cfg{};
    Mac own = own_mac(priority);
    std::memcpy(cfg.own_mac, own.data(), 6);
    std::uint32_t cluster_ip = tables.vips().front().words[0];
    MacAddress cmac = cluster_mac(cluster_ip, ClusterMode::unicast);
    MacAddress src = masked_source_mac(cluster_ip, priority);
    std::memcpy(cfg.cluster_mac, cmac.data(), 6);
    std::memcpy(cfg.arp_src_mac, src.data(), 6);
    cfg.host_priority = priority;
    cfg.flags = NLB_CFG_ANSWER_NEIGH;
    maps_->write_config(cfg);
    maps_->state().config.alive = 1;
    maps_->write_tables(tables);
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
        nlb_rule rule{};
        if (slot < tables.rules().size())
            rule.mode = tables.rules()[slot].mode;
        rule.affinity = tables.affinity_of(slot);
        maps_->write_rule(slot, rule);
    }
    maps_->clear_stats();
    filter_->rebuild(*maps_); // as the agent does once attached: valid from here on
}

void DataplaneFixture::set_buckets(std::uint32_t slot,
                                   const std::function<std::uint16_t(std::uint16_t)>& entry) {
    nlb_rule& rule = maps_->state().rules[slot];
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        rule.bucket[b] = entry(static_cast<std::uint16_t>(b));
}

void DataplaneFixture::own_all(std::uint32_t slot, std::uint8_t owner) {
    std::uint16_t e = owner == priority_ ? static_cast<std::uint16_t>(owner | NLB_BKT_MINE) : owner;
    set_buckets(slot, [e](std::uint16_t) { return e; });
}

int DataplaneFixture::arm_watchdog(std::uint64_t timeout_ns) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t now = std::uint64_t(ts.tv_sec) * 1000000000ULL + std::uint64_t(ts.tv_nsec);
    return arm_watchdog_until(now + timeout_ns, timeout_ns);
}

int DataplaneFixture::arm_watchdog_until(std::uint64_t deadline_ns, std::uint64_t timeout_ns) {
    maps_->state().config.watchdog_timeout_ns = timeout_ns;
    Bytes frame(64, 0);
    std::memcpy(frame.data(), &deadline_ns, sizeof(deadline_ns));
    return test_run(bpf_program__fd(skel_->progs.nlb_watchdog_arm), frame).action;
}

void DataplaneFixture::set_alive(bool alive) { maps_->state().config.alive = alive ? 1 : 0; }

int DataplaneFixture::seed(const nlb_tuple& t) {
    Bytes frame(64, 0);
    std::memcpy(frame.data(), &t, sizeof(t));
    return test_run(bpf_program__fd(skel_->progs.nlb_seed), frame).action;
}

RunResult DataplaneFixture::run(const Bytes& frame) { return test_run(prog_fd(), frame); }

RunResult DataplaneFixture::run_egress(const Bytes& frame) {
    return test_run(bpf_program__fd(skel_->progs.nlb_nd_egress), frame);
}

std::size_t DataplaneFixture::egress_helper_calls(int func_id) const {
    const bpf_insn* insns = bpf_program__insns(skel_->progs.nlb_nd_egress);
    std::size_t n = 0;
    for (std::size_t i = 0; i < bpf_program__insn_cnt(skel_->progs.nlb_nd_egress); ++i)
        if (insns[i].code == (BPF_JMP | BPF_CALL) && insns[i].src_reg == 0 &&
            insns[i].imm == func_id)
            ++n;
    return n;
}

double DataplaneFixture::time_ns(const Bytes& frame, std::uint32_t repeat) {
    return test_run_ns(prog_fd(), frame, repeat);
}

double bare_time_ns(const Bytes& frame, std::uint32_t repeat) {
    bare_bpf* skel = bare_bpf__open_and_load();
    if (!skel)
        throw std::runtime_error("load bare.bpf.o: " + std::string(strerror(errno)));
    double ns = test_run_ns(bpf_program__fd(skel->progs.xdp_bare_pass), frame, repeat);
    bare_bpf__destroy(skel);
    return ns;
}

} // namespace nlb::test
