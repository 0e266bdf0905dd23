// The agent's side of the connection filter (include/nlb/conn_filter.h): the dataplane adds
// every key it records to both halves; the agent sizes the filter, rebuilds the half the
// dataplane does not read from the tables and switches to it, and reads how full it is.
// Over tables this agent's load created, it is valid from the start (empty, as they are);
// over tables an earlier agent left, it is invalid until the first rebuild, and the
// dataplane consults the tables for every packet that needs them, as without a filter.
#pragma once

#include <cstdint>
#include <string>

#include <nlb/conn_filter.h>
#include <nlb/maps.h>

namespace nlb {

class DataplaneMaps;

struct FilterRebuild {
    std::uint64_t keys = 0; // keys the tables held
    bool waited = true;     // the kernel waited out running programs (else a 50 ms pause did)
};

class ConnFilter {
  public:
    // Maps the filter (`fd`, its map of `entries` blocks) and, if no blocks per half are set
    // yet, sets them (as many as the map holds) and a random seed. Throws std::system_error.
    ConnFilter(int fd, std::uint32_t entries);
    ~ConnFilter();
    ConnFilter(const ConnFilter&) = delete;
    ConnFilter& operator=(const ConnFilter&) = delete;

    // Makes the filter valid as it is, every half empty: only for tables created with it,
    // before any program that records into them runs. From then on every key is added by
    // the dataplane as it records it, so the empty halves plus its additions are complete.
    // Spares an agent that starts on new tables a rebuild (a wait for every program run to
    // end, and a walk of four empty tables) on its way to its first heartbeat.
    void validate_new();

    // Map entries for tables of `opening` and `established` entries each (both families).
    static std::uint32_t entries_for(std::uint64_t opening, std::uint64_t established);

    // Waits until no program run that may have read the other half before the last switch
    // is still running, clears that half, adds every key the four tables hold, then makes it
    // the active half and the filter valid. A key recorded meanwhile is added by the
    // dataplane itself, before and after it enters its table. Throws std::system_error
    // when a table cannot be read to the end; the filter then stays as it was (the active
    // half, which the dataplane keeps adding to, is still complete).
    FilterRebuild rebuild(const DataplaneMaps& maps);

    bool valid() const;
    // True when the filter proves that `family`'s two tables hold no record: it is valid and
    // its active half for that family has no bit set. A record the dataplane adds meanwhile
    // may or may not be seen, as by a walk of the tables; a record written behind the
    // dataplane's back is not (as for may_hold). Reads the half (1 MB at the default
    // sizes) up to its first set word: tens of microseconds, where walking two empty tables
    // of the default size takes a millisecond and more. False when a rebuild switched halves
    // meanwhile (the agent rebuilds on its background thread while its loop asks).
    bool holds_nothing(std::uint8_t family) const;
    // Share of the active half's bits set, of the fuller family: what makes a "may hold"
    // answer wrong.
    double fill() const;
    std::uint64_t rebuilds() const { return header()->rebuilds; }
    // Adds a key to both halves, as the dataplane does before it records one: for a tool
    // that writes records from user space (nlb-fill-conns), which the agent's scans would not
    // walk otherwise.
    void record(const nlb_conn_key4& k);
    void record(const nlb_conn_key6& k);
    // What the dataplane answers for a key (a test's view).
    bool may_hold(const nlb_conn_key4& k) const;
    bool may_hold(const nlb_conn_key6& k) const;

  private:
    nlb_filter_header* header() const { return reinterpret_cast<nlb_filter_header*>(base_); }
    nlb_filter_block* block(std::uint32_t index) const { return base_ + index; }
    void add(std::uint8_t family, std::uint32_t half, std::uint32_t hash);
    bool holds(std::uint8_t family, std::uint32_t hash) const;

    nlb_filter_block* base_ = nullptr;
    std::size_t bytes_ = 0;
    std::uint32_t entries_ = 0;
};

} // namespace nlb
