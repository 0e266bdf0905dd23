#include "heartbeat_codec.hpp"

#include <algorithm>
#include <bit>
#include <bitset>

#include "heartbeat_sections.hpp"
#include "wire_io.hpp"

namespace nlb {
namespace {

using wire::Reader;
using wire::Writer;

constexpr std::size_t kHeadBytes = 40; // through the sequence number, both frame kinds

// The largest frame without its dirty section: every section there is, every list at its
// bound (64 echoes: 63 peers and a second host with the sender's priority), HMAC.
constexpr std::size_t section(std::size_t body) {
    return kSectionHeader + body;
}
constexpr std::size_t kLargestWithoutDirty =
    kHeartbeatHeaderSize + section(NLB_MAX_RULES * kRuleEntry) + section(kBaseSection) +
    section(kContactFixed + NLB_MAX_HOSTS * kEchoEntry) + section(kConfigSection) +
    section(kSeedSection) + section(kHealthSection) + section(4 + 4 * NLB_MAX_RULES) +
    section(kStagedSection) + section(kWantSection) + section(kOwnersSection + kGraceFields) +
    section(kAcksFixed + NLB_MAX_HOSTS * kAckEntry) + section(kMtuSection) + kHeartbeatMacSize;
// So the dirty section always fits, cut down to the slots entry at worst (encode_dirty).
static_assert(kLargestWithoutDirty + kSectionHeader + kDirtyMinSection <= kHeartbeatMaxSize);

} // namespace

std::vector<std::uint8_t> encode_heartbeat(const Heartbeat& hb, std::size_t budget) {
    budget = std::min(budget, kHeartbeatMaxSize);
    std::vector<std::uint8_t> out;
    out.reserve(512);
    Writer w(out);
    const std::uint8_t rule_count = std::min<std::uint8_t>(hb.rule_count, NLB_MAX_RULES);
    w.u32(kHeartbeatMagic);
    w.u8(kHeartbeatMajor);
    w.u8(kHeartbeatMinor);
    w.u16(static_cast<std::uint16_t>(kHeartbeatHeaderSize));
    w.u16(0); // total length, patched below
    w.u16(hb.flags);
    w.u32(hb.cluster_ip);
    w.u8(hb.priority);
    w.u8(static_cast<std::uint8_t>(hb.state));
    // 1.1 readers reject a reason above 2 in the header: the full one is in the config section.
    w.u8(static_cast<std::uint8_t>(hb.reason) <= 2 ? static_cast<std::uint8_t>(hb.reason) : 1);
    w.u8(rule_count);
    w.u32(0);
    w.u64(hb.nonce);
    w.u64(hb.sequence);
    w.u64(hb.fingerprint);
    w.u64(hb.view);
    w.u64(hb.view_digest);
    w.u64(hb.claim);
    w.u64(hb.claim_members);
    w.u64(hb.map_digest);
    w.u64(hb.connections);
    w.u64(hb.score);

    w.section(kSectionRules, rule_count * kRuleEntry);
    for (std::size_t r = 0; r < rule_count; ++r) {
        w.u8(hb.rules[r].load_weight);
        w.u8(hb.rules[r].handling_priority);
        w.u8(static_cast<std::uint8_t>(hb.control[r]));
    }

    w.section(kSectionBase, kBaseSection);
    w.u64(hb.base_digest);
    w.u32(hb.base_generation);
    w.u8(hb.base_flags);

    if (hb.has_contact) {
        const std::size_t n = std::min<std::size_t>(hb.echoes.size(), NLB_MAX_HOSTS);
        w.section(kSectionContact, kContactFixed + n * kEchoEntry);
        w.u8(hb.contact.family);
        w.u8(hb.contact_flags);
        w.u16(hb.contact.port);
        out.insert(out.end(), hb.contact.address.begin(), hb.contact.address.end());
        w.u8(static_cast<std::uint8_t>(n));
        w.u8(0);
        for (std::size_t i = 0; i < n; ++i) {
            w.u8(hb.echoes[i].priority);
            w.u8(hb.echoes[i].paths);
            w.u64(hb.echoes[i].nonce);
        }
    }
    if (hb.has_config) {
        w.section(kSectionConfig, kConfigSection);
        w.u8(hb.mode);
        w.u8(static_cast<std::uint8_t>(hb.reason));
        w.u16(static_cast<std::uint16_t>(hb.heartbeat_tolerance));
        w.u32(hb.heartbeat_ms);
        w.u32(hb.cleanup_delay_s);
        w.u64(hb.vips_digest);
        w.u64(hb.cohort);
    }
    if (hb.has_seed) {
        w.section(kSectionSeed, kSeedSection);
        w.u64(hb.seed_digest);
        w.u8(static_cast<std::uint8_t>(hb.seed_source));
        w.u8(0);
        w.u16(0);
    }

    if (hb.has_health) {
        w.section(kSectionHealth, kHealthSection);
        w.u32(hb.probe_down);
        w.u8(hb.panic_percent);
        w.u8(0);
        w.u16(0);
    }

    if (hb.load_rules) {
        const auto count = static_cast<std::size_t>(std::popcount(hb.load_rules));
        w.section(kSectionLoad, 4 + 4 * count);
        w.u32(hb.load_rules);
        for (std::size_t r = 0; r < NLB_MAX_RULES; ++r)
            if ((hb.load_rules >> r) & 1)
                w.u32(hb.loads[r]);
    }

    if (hb.staged || hb.switched_from) {
        w.section(kSectionStaged, kStagedSection);
        w.u64(hb.staged);
        w.u64(hb.switched_from);
    }

    if (hb.has_want) {
        w.section(kSectionWant, kWantSection);
        w.u64(hb.want);
    }

    if (hb.outside_owners || hb.grace_owners) {
        w.section(kSectionOwners, kOwnersSection + (hb.grace_owners ? kGraceFields : 0));
        w.u64(hb.outside_owners);
        if (hb.grace_owners) {
            w.u64(hb.grace_owners);
            w.u32(hb.grace_left_ms);
        }
    }

    if (hb.has_acks) {
        const std::size_t n = std::min<std::size_t>(hb.acks.size(), NLB_MAX_HOSTS);
        w.section(kSectionAcks, kAcksFixed + n * kAckEntry);
        w.u8(static_cast<std::uint8_t>(n));
        w.u8(0);
        for (std::size_t i = 0; i < n; ++i) {
            w.u8(hb.acks[i].priority);
            w.u8(0);
            w.u16(hb.acks[i].sequence);
        }
    }

    if (hb.mtu) {
        w.section(kSectionMtu, kMtuSection);
        w.u16(hb.mtu);
        w.u16(0);
    }

    // Below kHeartbeatMaxSize by the static_assert above; should a section outgrow the
    // budget, no budget at all (the dirty section then whole slots) rather than a wrapped-round
    // one.
    const std::size_t used = out.size() + kSectionHeader + kHeartbeatMacSize;
    const auto dirty = encode_dirty(hb.dirty, used < budget ? budget - used : 0);
    if (!dirty.empty()) {
        w.section(kSectionDirty, dirty.size());
        out.insert(out.end(), dirty.begin(), dirty.end());
    }
    if (hb.flags & Heartbeat::kFlagAuthenticated)
        out.resize(out.size() + kHeartbeatMacSize, 0);
    out[8] = static_cast<std::uint8_t>(out.size() >> 8);
    out[9] = static_cast<std::uint8_t>(out.size());
    return out;
}

HeadResult decode_head(std::span<const std::uint8_t> frame) {
    HeadResult result;
    Reader r(frame);
    const auto magic = r.u32();
    const auto major = r.u8();
    const auto minor = r.u8();
    const auto header_len = r.u16();
    const auto total_len = r.u16();
    const auto flags = r.u16();
    const auto cluster_ip = r.u32();
    if (!r.ok()) {
        result.error = DecodeError::truncated;
        return result;
    }
    if (magic != kHeartbeatMagic && magic != kMapChunkMagic) {
        result.error = DecodeError::bad_magic;
        return result;
    }
    if (major != kHeartbeatMajor) {
        result.error = DecodeError::bad_version;
        result.cluster_ip = cluster_ip;
        return result;
    }
    const bool chunk = magic == kMapChunkMagic;
    const std::size_t min_header = chunk ? kMapChunkHeaderSize : kHeartbeatHeaderSize;
    if (total_len > frame.size()) {
        result.error = DecodeError::truncated;
        return result;
    }
    if (total_len > kHeartbeatMaxSize || header_len < min_header || header_len > total_len ||
        total_len < kHeadBytes) {
        result.error = DecodeError::bad_length;
        return result;
    }
    FrameHead h;
    h.chunk = chunk;
    h.major = major;
    h.minor = minor;
    h.header_length = header_len;
    h.total_length = total_len;
    h.flags = flags;
    h.cluster_ip = cluster_ip;
    h.priority = r.u8();
    r.bytes(7);
    h.nonce = r.u64();
    h.sequence = r.u64();
    if (!r.ok()) {
        result.error = DecodeError::truncated;
        return result;
    }
    if (h.priority < 1 || h.priority > NLB_MAX_HOSTS) {
        result.error = DecodeError::bad_field;
        return result;
    }
    if ((flags & Heartbeat::kFlagAuthenticated) && total_len < header_len + kHeartbeatMacSize) {
        result.error = DecodeError::bad_length;
        return result;
    }
    result.head = h;
    return result;
}

DecodeResult decode_heartbeat(std::span<const std::uint8_t> frame) {
    DecodeResult result;
    auto fail = [&](DecodeError e) {
        result.error = e;
        result.heartbeat.reset();
        return result;
    };
    Reader r(frame);
    const auto magic = r.u32();
    const auto major = r.u8();
    const auto minor = r.u8();
    const auto header_len = r.u16();
    const auto total_len = r.u16();
    if (!r.ok())
        return fail(DecodeError::truncated);
    if (magic != kHeartbeatMagic)
        return fail(DecodeError::bad_magic);
    if (major != kHeartbeatMajor)
        return fail(DecodeError::bad_version);
    if (total_len > frame.size())
        return fail(DecodeError::truncated);
    if (total_len > kHeartbeatMaxSize || header_len < kHeartbeatHeaderSize ||
        header_len > total_len)
        return fail(DecodeError::bad_length);

    Heartbeat hb;
    hb.version_major = major;
    hb.version_minor = minor;
    Reader h(frame.subspan(10, kHeartbeatHeaderSize - 10));
    hb.flags = h.u16();
    hb.cluster_ip = h.u32();
    hb.priority = h.u8();
    const auto state = h.u8();
    const auto reason = h.u8();
    hb.rule_count = h.u8();
    h.u32();
    hb.nonce = h.u64();
    hb.sequence = h.u64();
    hb.fingerprint = h.u64();
    hb.view = h.u64();
    hb.view_digest = h.u64();
    hb.claim = h.u64();
    hb.claim_members = h.u64();
    hb.map_digest = h.u64();
    hb.connections = h.u64();
    hb.score = h.u64();
    if (!h.ok())
        return fail(DecodeError::truncated);
    if (hb.priority < 1 || hb.priority > NLB_MAX_HOSTS || state > 5 || reason > 2 ||
        hb.rule_count > NLB_MAX_RULES)
        return fail(DecodeError::bad_field);
    hb.state = static_cast<HostState>(state);
    hb.reason = static_cast<RefuseReason>(reason);

    std::size_t end = total_len;
    if (hb.flags & Heartbeat::kFlagAuthenticated) {
        if (end < header_len + kHeartbeatMacSize)
            return fail(DecodeError::bad_length);
        end -= kHeartbeatMacSize;
    }
    Reader sections(frame.subspan(header_len, end - header_len));
    // Each known section at most once; other types are a later minor version's, skipped.
    std::bitset<16> seen;
    while (sections.left() > 0) {
        const auto type = sections.u8();
        sections.u8();
        const auto length = sections.u16();
        const auto body = sections.bytes(length);
        if (!sections.ok())
            return fail(DecodeError::truncated);
        DecodeError (*decode)(std::span<const std::uint8_t>, Heartbeat&) = nullptr;
        switch (type) {
        case kSectionRules:
            decode = decode_rules;
            break;
        case kSectionDirty:
            decode = decode_dirty_section;
            break;
        case kSectionBase:
            decode = decode_base;
            break;
        case kSectionContact:
            decode = decode_contact;
            break;
        case kSectionConfig:
            decode = decode_config;
            break;
        case kSectionSeed:
            decode = decode_seed;
            break;
        case kSectionHealth:
            decode = decode_health;
            break;
        case kSectionLoad:
            decode = decode_load;
            break;
        case kSectionStaged:
            decode = decode_staged;
            break;
        case kSectionWant:
            decode = decode_want;
            break;
        case kSectionOwners:
            decode = decode_owners;
            break;
        case kSectionAcks:
            decode = decode_acks;
            break;
        case kSectionMtu:
            decode = decode_mtu;
            break;
        }
        if (!decode)
            continue;
        if (seen[type])
            return fail(DecodeError::bad_field);
        seen.set(type);
        if (const auto e = decode(body, hb); e != DecodeError::none)
            return fail(e);
    }
    if (!seen[kSectionRules] && hb.rule_count > 0)
        return fail(DecodeError::bad_field);
    // A rule a probe holds down travels as draining, so that older readers drain it too.
    for (std::size_t r = 0; r < hb.rule_count; ++r)
        if ((hb.probe_down >> r) & 1 && hb.control[r] != RuleControl::draining)
            return fail(DecodeError::bad_field);
    result.heartbeat = std::move(hb);
    result.length = total_len;
    return result;
}

} // namespace nlb
