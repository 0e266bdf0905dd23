// The heartbeat wire format (docs/convergence.md has the byte table): encoder and the strict
// decoder every received frame goes through. Big-endian; a fixed header, then type-length
// sections (unknown types skipped, so a later minor version can add some), then, when the
// cluster has a key, an HMAC-SHA256 trailer (heartbeat_auth).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <nlb/limits.h>

#include "heartbeat.hpp"

namespace nlb {

inline constexpr std::uint32_t kHeartbeatMagic = 0x4e4c4248; // "NLBH"
inline constexpr std::uint8_t kHeartbeatMajor = 1;
inline constexpr std::uint8_t kHeartbeatMinor = 2; // 1: base map, map chunks; 2: contact, config
inline constexpr std::size_t kHeartbeatHeaderSize = 104;
inline constexpr std::size_t kHeartbeatMacSize = 32;
// Ethernet payload budget: one standard frame, whatever the rules and dirty buckets. Also
// the most any reader takes. A host sizes its own frames to the least MTU it knows of on the
// segment (ConvergenceEngine::frame_budget), never below kFrameBudgetMin (below).
inline constexpr std::size_t kHeartbeatMaxSize = 1500;

inline constexpr std::uint8_t kSectionRules = 1;
inline constexpr std::uint8_t kSectionDirty = 2;
inline constexpr std::uint8_t kSectionBase = 3;    // minor 1
inline constexpr std::uint8_t kSectionContact = 4; // minor 2
inline constexpr std::uint8_t kSectionConfig = 5;  // minor 2
// Minor 2 still: a reader that predates it skips it, and a frame without it hashes with the
// fixed seed, which is what such a reader's own host does.
inline constexpr std::uint8_t kSectionSeed = 6;
// Minor 2 still, for the same reason: health probes (docs/health.md). A frame without it is
// from a version without probes, whose members keep the cluster out of panic mode.
inline constexpr std::uint8_t kSectionHealth = 7;
// Load feedback (docs/load-feedback.md): readers that predate it skip it, as any unknown type.
inline constexpr std::uint8_t kSectionLoad = 8;
// Staged configuration (docs/staged-config.md): what the sender holds staged and what it ran
// before its last switch. Readers that predate it skip it; they can take part in no switch.
inline constexpr std::uint8_t kSectionStaged = 9;
// Second path on request (docs/convergence.md, "Contact"): the peers whose segment frames
// are late at the sender. Readers that predate it skip it, and get every other heartbeat by
// the second path from a settled peer, as they always did.
inline constexpr std::uint8_t kSectionWant = 10;
// Owners outside the view (docs/convergence.md, "Hand-over"): what the sender knows of hosts
// that may own buckets outside its view, for a peer that cannot know (it started after their
// last frame). Readers that predate it skip it and take as they always did.
inline constexpr std::uint8_t kSectionOwners = 11;
// What the sender heard of each peer (docs/convergence.md, "Confirmed heartbeats"): readers
// that predate it skip it, and their peers' watchdogs count from their own refresh alone.
inline constexpr std::uint8_t kSectionAcks = 12;
// The sender's interface MTU when below 1,500 (docs/convergence.md, "Frame size"): readers
// that predate it skip it and send it frames of up to 1,500 bytes, as they always did.
inline constexpr std::uint8_t kSectionMtu = 13;

// Map-chunk frames: another magic, so a 1.0 agent counts them as "not a heartbeat".
inline constexpr std::uint32_t kMapChunkMagic = 0x4e4c424d; // "NLBM"
inline constexpr std::size_t kMapChunkHeaderSize = 56;
inline constexpr std::size_t kMapChunkData = 1200; // every chunk but the last carries this
// The least interface MTU the agent attaches to: a map chunk must fit it whole (1,288 bytes
// with its HMAC; the chunks' size is fixed by the wire format, so that every reader checks it).
inline constexpr std::size_t kMinMtu = kMapChunkHeaderSize + kMapChunkData + kHeartbeatMacSize;
// The IP and UDP headers around a heartbeat sent by the second path (IPv6: 40 + 8).
inline constexpr std::size_t kSecondPathOverhead = 48;
inline constexpr std::size_t kFrameBudgetMin = kMinMtu - kSecondPathOverhead;
// An encoded map: per slot one kind byte and at most one byte per bucket.
inline constexpr std::size_t kMapMaxEncoded = std::size_t{NLB_RULE_SLOTS} * (1 + NLB_BUCKETS);
inline constexpr std::size_t kMapMaxChunks = (kMapMaxEncoded + kMapChunkData - 1) / kMapChunkData;

enum class DecodeError {
    none,
    truncated,   // shorter than its header or its own length
    bad_magic,   // not a heartbeat
    bad_version, // a major version this agent cannot read
    bad_length,  // a length field out of bounds
    bad_field,   // a value out of range (priority, state, rule count, bucket index...)
};

const char* to_string(DecodeError error);

// What admission needs before it spends anything on a frame (docs/convergence.md, "Admission"):
// the first 40 bytes of either frame kind, whose layout every 1.x keeps. Lengths are checked
// against the frame and their bounds; nothing else is read.
struct FrameHead {
    bool chunk = false; // a map chunk ("NLBM"), else a heartbeat ("NLBH")
    std::uint8_t major = 0, minor = 0;
    std::size_t header_length = 0, total_length = 0;
    std::uint16_t flags = 0;
    std::uint32_t cluster_ip = 0;
    std::uint8_t priority = 0;
    std::uint64_t nonce = 0, sequence = 0;
};
struct HeadResult {
    std::optional<FrameHead> head;
    DecodeError error = DecodeError::none;
    // Set with bad_version when the frame is long enough to name a cluster (bytes 12..15 keep
    // their place in every version): an unreadable frame of this cluster holds back a host
    // that never had an authenticated peer.
    std::optional<std::uint32_t> cluster_ip;
};
HeadResult decode_head(std::span<const std::uint8_t> frame);

struct DecodeResult {
    std::optional<Heartbeat> heartbeat;
    DecodeError error = DecodeError::none;
    std::size_t length = 0; // the frame's own length (the MAC covers [0, length - 32))
};

// Encodes `hb` (flags as given; when kFlagAuthenticated is set the last 32 bytes are left
// zero for heartbeat_auth to fill). Dirty buckets are coarsened, never dropped, until the
// frame fits `budget` (at most kHeartbeatMaxSize), which at kHeartbeatMaxSize every frame
// does, whatever the heartbeat holds (lists past their bounds are cut to them). Below, a
// frame whose other sections take more comes out longer than `budget`: the caller checks.
std::vector<std::uint8_t> encode_heartbeat(const Heartbeat& hb,
                                           std::size_t budget = kHeartbeatMaxSize);

// Strict: every length is checked against the bytes present and against its own bound before
// it is used; nothing is allocated from a length field beyond those bounds.
DecodeResult decode_heartbeat(std::span<const std::uint8_t> frame);

// True when `frame` starts with the map-chunk magic (the agent hands both kinds to the engine).
bool is_map_chunk(std::span<const std::uint8_t> frame);

// Map chunks: the encoder leaves the MAC zero like encode_heartbeat; the decoder checks every
// length and index against the bounds above (count matches map_size, data length matches
// the chunk's place) before anything is used.
std::vector<std::uint8_t> encode_map_chunk(const MapChunk& chunk);
struct ChunkDecodeResult {
    std::optional<MapChunk> chunk;
    DecodeError error = DecodeError::none;
    std::size_t length = 0;
};
ChunkDecodeResult decode_map_chunk(std::span<const std::uint8_t> frame);

// Dirty-bucket encoding alone (exposed for the tests): per slot a list of bucket groups or a
// bitmap of them, with groups of 2^shift buckets; shifts grow until the whole fits `budget`,
// then slots go whole into one entry that names them. Never longer than `budget` when that is
// at least kDirtyMinSection; below, that entry all the same (a superset, never less).
std::vector<std::uint8_t> encode_dirty(std::span<const DirtySlot> dirty, std::size_t budget);
// The least a dirty section's body is cut to: every slot whole, in one entry.
inline constexpr std::size_t kDirtyMinSection = 6 + (NLB_RULE_SLOTS + 7) / 8;
// The dirty section's body, decoded into hb.dirty (decode_heartbeat's, dirty_codec.cpp).
DecodeError decode_dirty_section(std::span<const std::uint8_t> body, Heartbeat& hb);

} // namespace nlb
