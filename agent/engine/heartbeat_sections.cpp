#include "heartbeat_sections.hpp"

#include <algorithm>
#include <bit>

#include "wire_io.hpp"

namespace nlb {
namespace {

using wire::Reader;

constexpr std::uint8_t kMaxPanicPercent = 100;

std::uint64_t host_bit_of(std::uint8_t priority) {
    return std::uint64_t{1} << (priority - 1);
}

} // namespace

DecodeError decode_rules(std::span<const std::uint8_t> body, Heartbeat& hb) {
    if (body.size() != std::size_t{hb.rule_count} * kRuleEntry)
        return DecodeError::bad_length;
    Reader r(body);
    for (std::size_t i = 0; i < hb.rule_count; ++i) {
        const auto weight = r.u8();
        const auto handling = r.u8();
        const auto control = r.u8();
        if ((weight > 100 && weight != kEqualWeight) || control > 2)
            return DecodeError::bad_field;
        hb.rules[i] = {weight, handling};
        hb.control[i] = static_cast<RuleControl>(control);
    }
    return DecodeError::none;
}

DecodeError decode_base(std::span<const std::uint8_t> body, Heartbeat& hb) {
    if (body.size() != kBaseSection)
        return DecodeError::bad_length;
    Reader r(body);
    hb.base_digest = r.u64();
    hb.base_generation = r.u32();
    hb.base_flags = r.u8();
    if ((hb.base_flags & ~Heartbeat::kBaseGiveUp) != 0 ||
        (hb.base_digest == 0) != (hb.base_generation == 0))
        return DecodeError::bad_field;
    return DecodeError::none;
}

DecodeError decode_contact(std::span<const std::uint8_t> body, Heartbeat& hb) {
    if (body.size() < kContactFixed)
        return DecodeError::bad_length;
    Reader r(body);
    hb.contact.family = r.u8();
    hb.contact_flags = r.u8();
    hb.contact.port = r.u16();
    const auto address = r.bytes(16);
    std::copy(address.begin(), address.end(), hb.contact.address.begin());
    const auto count = r.u8();
    r.u8();
    if (!r.ok())
        return DecodeError::truncated;
    if ((hb.contact.family != 0 && hb.contact.family != 4 && hb.contact.family != 6) ||
        (hb.contact_flags & ~Heartbeat::kContactDeaf) != 0 || count > NLB_MAX_HOSTS)
        return DecodeError::bad_field;
    if (body.size() != kContactFixed + std::size_t{count} * kEchoEntry)
        return DecodeError::bad_length;
    std::uint64_t seen = 0;
    hb.echoes.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        Heartbeat::Echo e;
        e.priority = r.u8();
        e.paths = r.u8();
        e.nonce = r.u64();
        if (e.priority < 1 || e.priority > NLB_MAX_HOSTS ||
            (e.paths & ~(Heartbeat::kPathSegment | Heartbeat::kPathContact)) != 0 ||
            (seen & host_bit_of(e.priority)))
            return DecodeError::bad_field;
        seen |= host_bit_of(e.priority);
        hb.echoes.push_back(e);
    }
    hb.has_contact = true;
    return DecodeError::none;
}

DecodeError decode_config(std::span<const std::uint8_t> body, Heartbeat& hb) {
    if (body.size() != kConfigSection)
        return DecodeError::bad_length;
    Reader r(body);
    hb.mode = r.u8();
    const auto reason = r.u8();
    hb.heartbeat_tolerance = r.u16();
    hb.heartbeat_ms = r.u32();
    hb.cleanup_delay_s = r.u32();
    hb.vips_digest = r.u64();
    hb.cohort = r.u64();
    if (reason > kMaxRefuseReason || hb.mode > 2)
        return DecodeError::bad_field;
    hb.reason = static_cast<RefuseReason>(reason);
    hb.has_config = true;
    return DecodeError::none;
}

DecodeError decode_seed(std::span<const std::uint8_t> body, Heartbeat& hb) {
    // Longer is a later version's: it may append, the fields here keep their places.
    if (body.size() < kSeedSection)
        return DecodeError::bad_length;
    Reader r(body);
    hb.seed_digest = r.u64();
    const auto source = r.u8();
    if (source > kMaxSeedSource || hb.seed_digest == 0)
        return DecodeError::bad_field;
    hb.seed_source = static_cast<SeedSource>(source);
    hb.has_seed = true;
    return DecodeError::none;
}

DecodeError decode_load(std::span<const std::uint8_t> body, Heartbeat& hb) {
    if (body.size() < 4)
        return DecodeError::bad_length;
    Reader r(body);
    const std::uint32_t rules = r.u32();
    const std::uint32_t rules_mask =
        hb.rule_count >= 32 ? ~std::uint32_t{0} : (std::uint32_t{1} << hb.rule_count) - 1;
    // Longer is a later version's; shorter than its rules say is broken.
    if ((rules & ~rules_mask) != 0 ||
        body.size() < 4 + 4 * static_cast<std::size_t>(std::popcount(rules)))
        return DecodeError::bad_field;
    for (std::size_t i = 0; i < NLB_MAX_RULES; ++i)
        if ((rules >> i) & 1)
            hb.loads[i] = r.u32();
    hb.load_rules = rules;
    return DecodeError::none;
}

DecodeError decode_staged(std::span<const std::uint8_t> body, Heartbeat& hb) {
    // Longer is a later version's, as for the seed section.
    if (body.size() < kStagedSection)
        return DecodeError::bad_length;
    Reader r(body);
    hb.staged = r.u64();
    hb.switched_from = r.u64();
    return DecodeError::none;
}

DecodeError decode_want(std::span<const std::uint8_t> body, Heartbeat& hb) {
    // Longer is a later version's, as for the seed section.
    if (body.size() < kWantSection)
        return DecodeError::bad_length;
    Reader r(body);
    // Nobody asks itself: that bit means nothing (a later version may give it a meaning).
    hb.want = r.u64() & ~host_bit_of(hb.priority);
    hb.has_want = true;
    return DecodeError::none;
}

DecodeError decode_owners(std::span<const std::uint8_t> body, Heartbeat& hb) {
    // Longer is a later version's, as for the seed section.
    if (body.size() < kOwnersSection)
        return DecodeError::bad_length;
    Reader r(body);
    // The sender is in its own view, or owns nothing: its own bit means nothing.
    hb.outside_owners = r.u64() & ~host_bit_of(hb.priority);
    if (body.size() >= kOwnersSection + kGraceFields) {
        hb.grace_owners = r.u64() & ~host_bit_of(hb.priority);
        hb.grace_left_ms = r.u32();
    }
    return DecodeError::none;
}

DecodeError decode_acks(std::span<const std::uint8_t> body, Heartbeat& hb) {
    if (body.size() < kAcksFixed)
        return DecodeError::bad_length;
    Reader r(body);
    const auto count = r.u8();
    r.u8();
    // Longer is a later version's, as for the seed section; shorter than its count is broken.
    if (count > NLB_MAX_HOSTS)
        return DecodeError::bad_field;
    if (body.size() < kAcksFixed + std::size_t{count} * kAckEntry)
        return DecodeError::bad_length;
    hb.acks.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        Heartbeat::Ack a;
        a.priority = r.u8();
        r.u8();
        a.sequence = r.u16();
        // Ascending, each priority once (Heartbeat::ack_of searches them).
        if (a.priority < 1 || a.priority > NLB_MAX_HOSTS ||
            (!hb.acks.empty() && a.priority <= hb.acks.back().priority))
            return DecodeError::bad_field;
        hb.acks.push_back(a);
    }
    hb.has_acks = true;
    return DecodeError::none;
}

DecodeError decode_mtu(std::span<const std::uint8_t> body, Heartbeat& hb) {
    // Longer is a later version's, as for the seed section. Any value is taken: the engine
    // bounds what it makes of it (frame_budget).
    if (body.size() < 2)
        return DecodeError::bad_length;
    Reader r(body);
    hb.mtu = r.u16();
    return DecodeError::none;
}

DecodeError decode_health(std::span<const std::uint8_t> body, Heartbeat& hb) {
    // Longer is a later version's, as for the seed section.
    if (body.size() < kHealthSection)
        return DecodeError::bad_length;
    Reader r(body);
    hb.probe_down = r.u32();
    hb.panic_percent = r.u8();
    // Only rules the frame has; whether their control says draining is checked once every
    // section is read (the rules section may come later).
    const std::uint32_t rules_mask =
        hb.rule_count >= 32 ? ~std::uint32_t{0} : (std::uint32_t{1} << hb.rule_count) - 1;
    if (hb.panic_percent > kMaxPanicPercent || (hb.probe_down & ~rules_mask) != 0)
        return DecodeError::bad_field;
    hb.has_health = true;
    return DecodeError::none;
}

} // namespace nlb
