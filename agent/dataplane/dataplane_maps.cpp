#include "dataplane_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include <nlb/flow.h>

#include "program_barrier.hpp"

namespace nlb {

namespace {

[[noreturn]] void fail(const std::string& what, int err) {
    throw std::system_error(err < 0 ? -err : err, std::generic_category(), what);
}

void update(int fd, const char* map, std::uint32_t key, const void* value) {
    if (int err = bpf_map_update_elem(fd, &key, value, BPF_ANY))
        fail(std::string("update ") + map + "[" + std::to_string(key) + "]", err);
}

void lookup(int fd, const char* map, std::uint32_t key, void* value) {
    if (int err = bpf_map_lookup_elem(fd, &key, value))
        fail(std::string("lookup ") + map + "[" + std::to_string(key) + "]", err);
}

int cpus() {
    int n = libbpf_num_possible_cpus();
    if (n <= 0)
        fail("count possible CPUs", n);
    return n;
}

} // namespace

void add_stats(nlb_stats& into, const nlb_stats& from) {
    into.accepted += from.accepted;
    into.dropped_not_owner += from.dropped_not_owner;
    into.dropped_dirty += from.dropped_dirty;
    into.dropped_disabled += from.dropped_disabled;
    into.dropped_watchdog += from.dropped_watchdog;
    into.malformed += from.malformed;
    into.arp_replied += from.arp_replied;
    into.nd_replied += from.nd_replied;
    into.neigh_dropped += from.neigh_dropped;
    into.vip_claims += from.vip_claims;
    into.tracked += from.tracked;
    into.established += from.established;
    into.established_full += from.established_full;
    into.passed_other += from.passed_other;
    into.remote_passed += from.remote_passed;
    into.remote_dropped += from.remote_dropped;
    into.heartbeat_rate_dropped += from.heartbeat_rate_dropped;
    into.fragments_recorded += from.fragments_recorded;
    into.fragments_unmatched += from.fragments_unmatched;
}

DataplaneMaps::DataplaneMaps(DataplaneMapFds fds) : fds_(fds) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(fds_.state, &info, &len))
        fail("inspect the state map", err);
    if (info.value_size != sizeof(nlb_state))
        throw std::system_error(EINVAL, std::generic_category(),
                                "state map: value size " + std::to_string(info.value_size) +
                                    ", expected " + std::to_string(sizeof(nlb_state)));
    void* mem = mmap(nullptr, sizeof(nlb_state), PROT_READ | PROT_WRITE, MAP_SHARED,
                     fds_.state, 0);
    if (mem == MAP_FAILED)
        fail("mmap the state map", errno);
    state_ = static_cast<nlb_state*>(mem);
}

DataplaneMaps::~DataplaneMaps() { munmap(state_, sizeof(nlb_state)); }

void DataplaneMaps::write_config(const nlb_config& cfg) {
    nlb_config& live = state_->config;
    live.watchdog_timeout_ns = cfg.watchdog_timeout_ns;
    // Not vip_seed: the seed and the VIP slots change together, in write_tables (else an
    // adopted dataplane would look its VIPs up under another seed for a moment).
    std::memcpy(live.own_mac, cfg.own_mac, sizeof(live.own_mac));
    std::memcpy(live.cluster_mac, cfg.cluster_mac, sizeof(live.cluster_mac));
    std::memcpy(live.arp_src_mac, cfg.arp_src_mac, sizeof(live.arp_src_mac));
    live.host_priority = cfg.host_priority;
    // The qdisc note is the loader's, not the configuration's.
    live.flags = static_cast<std::uint8_t>((cfg.flags & ~NLB_CFG_QDISC_OURS) |
                                           (live.flags & NLB_CFG_QDISC_OURS));
    live.vlan = cfg.vlan;
}

namespace {

bool same_vip(const nlb_vip& slot, const IpAddress& vip) {
    return slot.family == vip.family && std::memcmp(slot.addr, vip.words.data(), 16) == 0;
}

bool listed(const nlb_vip& slot, const std::vector<IpAddress>& vips) {
    for (const auto& v : vips)
        if (same_vip(slot, v))
            return true;
    return false;
}

// The program finds a VIP by its slot's family and address and then reads the rest: an
// empty slot is marked empty before anything else changes, and filled with its family last.
void empty_slot(nlb_vip& slot) {
    __atomic_store_n(&slot.family, std::uint8_t{NLB_FAMILY_NONE}, __ATOMIC_RELEASE);
}

void fill_slot(nlb_vip& slot, const nlb_vip& next) {
    if (slot.family != NLB_FAMILY_NONE && std::memcmp(slot.addr, next.addr, 16) != 0)
        empty_slot(slot);
    std::memcpy(slot.addr, next.addr, sizeof(slot.addr));
    __atomic_store_n(&slot.index, next.index, __ATOMIC_RELAXED);
    for (int p = 0; p < 2; ++p)
        __atomic_store_n(&slot.port_rule[p], next.port_rule[p], __ATOMIC_RELAXED);
    __atomic_store_n(&slot.family, next.family, __ATOMIC_RELEASE);
}

} // namespace

void DataplaneMaps::write_tables(const DataplaneTables& tables) {
    auto& live = state_->vips;
    const auto& next = tables.vip_slots();
    // A VIP that goes stops being one first: its port table may be another VIP's below. (The
    // agent took its address off the interface before: what now passes to the stack dies there.)
    for (auto& slot : live)
        if (slot.family != NLB_FAMILY_NONE && !listed(slot, tables.vips()))
            empty_slot(slot);
    const auto& chunks = tables.port_chunks();
    for (std::size_t v = 0; v < tables.vips().size(); ++v)
        for (std::uint32_t proto : {NLB_PROTO_TCP, NLB_PROTO_UDP}) {
            std::uint32_t first = nlb_port_chunk_key(tables.dataplane_index(v), proto, 0);
            for (std::uint32_t k = first; k < first + NLB_PORT_CHUNKS_PER_PROTO; ++k)
                update(fds_.ports, "nlb_ports", k, &chunks[k]);
        }
    __atomic_store_n(&state_->config.flow_seed, tables.flow_seed(), __ATOMIC_RELEASE);
    // VIP slots last: a VIP becomes visible only once its port table is in place.
    const auto place_all = [&] {
        for (std::uint32_t s = 0; s < NLB_VIP_SLOTS; ++s)
            if (next[s].family != NLB_FAMILY_NONE)
                fill_slot(live[s], next[s]);
            else if (live[s].family != NLB_FAMILY_NONE)
                empty_slot(live[s]);
    };
    if (state_->config.vip_seed == tables.vip_seed()) {
        place_all();
        return;
    }
    // Another seed moves every VIP. Built to replace the running tables, the new layout uses
    // no slot the old one does: both sit in the table while the seed switches in one store, so
    // a VIP both have is found throughout. (Else, at attach, what the maps held is rewritten.)
    bool apart = true;
    for (std::uint32_t s = 0; s < NLB_VIP_SLOTS; ++s)
        if (next[s].family != NLB_FAMILY_NONE) {
            if (live[s].family == NLB_FAMILY_NONE)
                fill_slot(live[s], next[s]);
            else
                apart = false;
        }
    __atomic_store_n(&state_->config.vip_seed, tables.vip_seed(), __ATOMIC_RELEASE);
    // A packet that read the old seed just before still looks in an old slot until its
    // program run ends.
    if (apart)
        wait_out_programs();
    place_all();
}

std::uint64_t DataplaneMaps::slots_changed_by(const DataplaneTables& tables) const {
    const nlb_config& cfg = state_->config;
    const std::uint32_t pinned_seed = cfg.flow_seed ? cfg.flow_seed : NLB_FLOW_SEED;
    if (pinned_seed != tables.flow_seed())
        return ~std::uint64_t{0}; // every bucket of every rule means another set of clients
    const VipLayout pinned = VipLayout::of_slots(state_->vips, cfg.vip_seed);
    std::vector<const nlb_vip*> slots;
    for (const IpAddress& vip : pinned.vips)
        slots.push_back(&state_->vips[nlb_vip_slot(vip.family, vip.words.data(), cfg.vip_seed)]);
    // The port tables as the program reads them: the VIP slot's rule, or its chunk's.
    nlb_port_chunk chunk{};
    std::uint32_t chunk_key = ~0U;
    auto rule_of = [&](std::size_t i, std::uint32_t proto, std::uint16_t port) -> std::uint32_t {
        if (slots[i]->port_rule[proto] != NLB_PORT_RULE_VARIES)
            return slots[i]->port_rule[proto];
        const std::uint32_t key = nlb_port_chunk_key(pinned.index[i], proto, port);
        if (key != chunk_key && bpf_map_lookup_elem(fds_.ports, &key, &chunk) != 0)
            std::memset(chunk.rule, NLB_RULE_DEFAULT, sizeof(chunk.rule));
        chunk_key = key;
        return chunk.rule[port & (NLB_PORT_CHUNK - 1)];
    };
    return changed_slots([&](std::uint32_t s) { return state_->rules[s].mode; },
                         [&](std::uint32_t s) { return state_->rules[s].affinity; }, pinned.vips,
                         rule_of, tables);
}

void DataplaneMaps::write_rule(std::uint32_t slot, const nlb_rule& rule) {
    if (slot >= NLB_RULE_SLOTS)
        throw std::system_error(EINVAL, std::generic_category(),
                                "write rule slot " + std::to_string(slot));
    std::memcpy(&state_->rules[slot], &rule, sizeof(rule));
}

bool DataplaneMaps::trust_heartbeat_source(const std::array<std::uint8_t, 6>& mac) {
    nlb_hb_rate_key key{};
    std::memcpy(key.mac, mac.data(), sizeof(key.mac));
    const std::uint64_t unused = 0;
    int err = bpf_map_update_elem(fds_.hb_trusted, &key, &unused, BPF_ANY);
    const bool emptied = err == -E2BIG;
    if (emptied) {
        // Full (of sources an earlier agent wrote): start again from the members heard now.
        clear_trusted_sources();
        err = bpf_map_update_elem(fds_.hb_trusted, &key, &unused, BPF_ANY);
    }
    if (err)
        fail("update nlb_hb_trusted", err);
    return emptied;
}

void DataplaneMaps::clear_trusted_sources() {
    nlb_hb_rate_key key{}, next{};
    // Bounded: each round deletes the first key; the map holds at most its max_entries.
    for (std::uint32_t i = 0; i <= NLB_HB_TRUSTED_ENTRIES; ++i) {
        if (bpf_map_get_next_key(fds_.hb_trusted, nullptr, &next) != 0)
            return;
        key = next;
        bpf_map_delete_elem(fds_.hb_trusted, &key);
    }
}

std::uint64_t DataplaneMaps::heartbeat_untrusted_dropped() const {
    nlb_hb_rate r{};
    const std::uint32_t zero = 0;
    if (fds_.hb_untrusted < 0 || bpf_map_lookup_elem(fds_.hb_untrusted, &zero, &r) != 0)
        return 0;
    return r.dropped;
}

nlb_stats DataplaneMaps::read_stats(std::uint32_t slot) const {
    std::vector<nlb_stats> per_cpu(static_cast<std::size_t>(cpus()));
    lookup(fds_.stats, "nlb_stats", slot, per_cpu.data());
    nlb_stats sum{};
    for (const auto& s : per_cpu)
        add_stats(sum, s);
    return sum;
}

void DataplaneMaps::clear_stats() {
    std::vector<nlb_stats> zero(static_cast<std::size_t>(cpus()));
    for (std::uint32_t slot = 0; slot < NLB_STATS_SLOTS; ++slot)
        update(fds_.stats, "nlb_stats", slot, zero.data());
}

} // namespace nlb
