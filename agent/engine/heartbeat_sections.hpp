// The sections after a heartbeat's fixed header (docs/convergence.md has the byte table):
// their sizes, one table for the encoder that writes them and the decoders that check them,
// and the decoder of each known type but the dirty one (dirty_codec.cpp). Internal to the
// engine: decode_heartbeat is their only caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "heartbeat.hpp"
#include "heartbeat_codec.hpp"

namespace nlb {

inline constexpr std::size_t kSectionHeader = 4;
inline constexpr std::size_t kRuleEntry = 3;
inline constexpr std::size_t kBaseSection = 13;
inline constexpr std::size_t kContactFixed = 22; // family, flags, port, address, count, reserved
inline constexpr std::size_t kEchoEntry = 10;
inline constexpr std::size_t kConfigSection = 28;
inline constexpr std::size_t kSeedSection = 12;   // digest, source, 3 reserved
inline constexpr std::size_t kHealthSection = 8;  // probe_down, panic_percent, 3 reserved
inline constexpr std::size_t kStagedSection = 16; // staged, switched_from
inline constexpr std::size_t kWantSection = 8;    // want
inline constexpr std::size_t kOwnersSection = 8;  // outside_owners
inline constexpr std::size_t kGraceFields = 12;   // grace_owners, grace_left_ms (appended)
inline constexpr std::size_t kAcksFixed = 2;      // count, reserved
inline constexpr std::size_t kAckEntry = 4;       // priority, reserved, sequence (low 16 bits)
inline constexpr std::size_t kMtuSection = 4;     // mtu, reserved

// Each checks its body's length and fields before `hb` keeps them. `hb` holds the fixed
// header already: the rules, load and health sections are checked against its rule count,
// and the want and owners sections drop the sender's own bit by its priority.
DecodeError decode_rules(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_base(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_contact(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_config(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_seed(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_load(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_staged(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_want(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_owners(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_acks(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_mtu(std::span<const std::uint8_t> body, Heartbeat& hb);
DecodeError decode_health(std::span<const std::uint8_t> body, Heartbeat& hb);

} // namespace nlb
