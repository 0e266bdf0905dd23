// Carries the contents of a map pinned by an earlier agent into this build's map when the two
// layouts differ (a field added, a table turned from LRU into hash, a size changed): entry by
// entry, field by field, matched by name as each map's BTF describes it. The dataplane loader
// uses it on adoption, so that an upgraded agent keeps the tracked connections and the bucket
// ownership of the dataplane it takes over (docs/dataplane.md, "Upgrading a pinned dataplane").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct bpf_map;

namespace nlb {

// Whether the map pinned as `pinned_fd` can serve as `map` as it is (what libbpf demands to
// reuse a pin: type, key and value size, entries, flags).
bool pin_reusable(int pinned_fd, const bpf_map* map);

// Whether a map's value holds something that cannot be copied (a bpf_timer): such a map
// starts empty in its new layout.
bool holds_kernel_object(int map_fd);

struct MigrationCount {
    std::uint64_t copied = 0;
    std::uint64_t present = 0; // skipped by only_missing: the new map already had the key
    std::uint64_t refused = 0; // the new map refused it (full)
};

// Converts the entries of one layout into another. Built from both maps' BTF; throws
// std::runtime_error naming what cannot be converted: a map without BTF, or a key field of
// the new layout that the old one lacks (a key made up of zeroes would be another key).
// Value fields the old layout lacks start at zero.
class MapMigration {
  public:
    MapMigration(int from_fd, int to_fd);
    ~MapMigration();
    MapMigration(const MapMigration&) = delete;
    MapMigration& operator=(const MapMigration&) = delete;

    // Copies every entry (only those whose key `to` lacks when only_missing); bounded by the
    // old map's size.
    MigrationCount copy(bool only_missing = false) const;

  private:
    struct Plan;
    std::unique_ptr<Plan> plan_;
    int from_fd_;
    int to_fd_;
};

} // namespace nlb
