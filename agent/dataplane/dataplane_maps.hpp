// Writes the dataplane's tables into its BPF maps and reads its counters back. Works on map
// file descriptors (from the skeleton or from pinned maps), so the agent and the tests share
// one writer. The state map (the program's .bss) is mapped into memory and written in place.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <nlb/maps.h>

#include "dataplane_tables.hpp"

namespace nlb {

struct DataplaneMapFds {
    int state = -1; // the program's .bss: struct nlb_state
    int ports = -1;
    int conns4 = -1;
    int conns6 = -1;
    int stats = -1;
    int est4 = -1;
    int est6 = -1;
    int hb_trusted = -1;
    int hb_untrusted = -1;
};

// Adds every counter of `from` into `into` (per-CPU values, slots).
void add_stats(nlb_stats& into, const nlb_stats& from);

// Every method throws std::system_error whose message names the map and the operation.
class DataplaneMaps {
  public:
    explicit DataplaneMaps(DataplaneMapFds fds);
    ~DataplaneMaps();
    DataplaneMaps(const DataplaneMaps&) = delete;
    DataplaneMaps& operator=(const DataplaneMaps&) = delete;

    // The live state the XDP program reads; writes take effect at once.
    nlb_state& state() { return *state_; }
    const nlb_state& state() const { return *state_; }

    // Everything but what the program itself maintains (alive, watchdog_deadline_ns) and
    // what write_tables writes (vip_seed, flow_seed).
    void write_config(const nlb_config& cfg);
    // Makes `tables` the live ones, from whatever the maps hold (nothing, or the running
    // tables): the slots of VIPs `tables` lacks emptied, then the port chunks of every VIP
    // in `tables`, the hash seed, then the VIP slots. Built to replace the running tables
    // (DataplaneTables' `before`), a VIP both have is found by every packet throughout.
    void write_tables(const DataplaneTables& tables);
    // The rule slots whose packets `tables` would decide otherwise than the tables the maps
    // hold (an adopted dataplane's, an earlier agent's): a mode or affinity, the rule a port
    // of a VIP both have maps to (both slots), or the hash seed (every slot). What
    // changed_slots() says of two DataplaneTables, read from the maps.
    std::uint64_t slots_changed_by(const DataplaneTables& tables) const;
    void write_rule(std::uint32_t slot, const nlb_rule& rule);
    // A source MAC whose 0x886F frame the engine authenticated and found fresh: its frames
    // pass on its own budget, outside the one unknown sources share (nlb_hb_trusted). True
    // when the table was full (of sources an earlier agent wrote: it is pinned) and emptied
    // first: every source trusted before must then be written again.
    [[nodiscard]] bool trust_heartbeat_source(const std::array<std::uint8_t, 6>& mac);
    void clear_trusted_sources();
    // 0x886F frames from sources not trusted, dropped over the budget they share.
    std::uint64_t heartbeat_untrusted_dropped() const;
    // Counters of one stats slot, summed over CPUs.
    nlb_stats read_stats(std::uint32_t slot) const;
    void clear_stats();

    const DataplaneMapFds& fds() const { return fds_; }

  private:
    DataplaneMapFds fds_;
    nlb_state* state_ = nullptr;
};

} // namespace nlb
