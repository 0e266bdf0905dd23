// The map transfer's payload: a ClusterMap in a compact encoding (a host that joins learns
// the cluster's base map this way, docs/convergence.md section 4), and the one bounded
// buffer a receiver reassembles chunks in.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "allocation.hpp"
#include "heartbeat.hpp"
#include "heartbeat_codec.hpp"

namespace nlb {

// Per slot one kind byte, then: kSlotUniform one owner byte (every bucket the same owner),
// kSlotSame the index of an earlier identical slot, kSlotPacked 6 bits per bucket of
// owner - 1 (every owner 1..64), kSlotRaw one byte per bucket. At most kMapMaxEncoded bytes.
std::vector<std::uint8_t> encode_map(const ClusterMap& map);
// Strict: nullopt on any unknown kind, forward or self reference, owner > NLB_MAX_HOSTS,
// short or trailing bytes.
std::optional<ClusterMap> decode_map(std::span<const std::uint8_t> bytes);

// The chunks of one encoded map, numbered as on the wire.
std::size_t chunk_count(std::size_t encoded_size);
std::span<const std::uint8_t> chunk_data(std::span<const std::uint8_t> encoded, std::size_t index);

// Reassembly of the one map this host is waiting for. Chunks of another digest restart it;
// memory is bounded by kMapMaxEncoded whatever arrives.
class MapAssembly {
  public:
    enum class Result { stored, duplicate, mismatch, complete };
    // `chunk` was decoded by decode_map_chunk (index, count and size consistent).
    Result add(const MapChunk& chunk);
    // After `complete`: the map, if it decodes and its digest is the one announced.
    std::optional<ClusterMap> take();
    void reset();
    std::uint64_t digest() const { return digest_; }

  private:
    std::uint64_t digest_ = 0;
    std::uint32_t size_ = 0;
    std::size_t have_ = 0;
    std::bitset<kMapMaxChunks> got_;
    std::vector<std::uint8_t> buffer_;
};

} // namespace nlb
