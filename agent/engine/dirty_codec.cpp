// The dirty-bucket section of a heartbeat (docs/convergence.md, "Dirty buckets"): per rule
// slot, the buckets the sender still serves connections in after losing them, as a list of
// bucket groups or a bitmap of them; groups widen until the section fits the frame.
#include <bitset>

#include "heartbeat_codec.hpp"
#include "wire_io.hpp"

namespace nlb {
namespace {

using wire::Reader;
using wire::Writer;

constexpr std::uint8_t kMaxShift = 12; // 2^12 = NLB_BUCKETS: one group, the whole slot
constexpr std::uint8_t kFormatList = 0;
constexpr std::uint8_t kFormatBitmap = 1;
constexpr std::size_t kDirtyEntryHeader = 6;

std::uint32_t groups_at(std::uint8_t shift) {
    return NLB_BUCKETS >> shift;
}
std::size_t bitmap_bytes(std::uint8_t shift) {
    return (groups_at(shift) + 7) / 8;
}

BucketBits coarsen(const BucketBits& buckets, std::uint8_t shift) {
    BucketBits groups;
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        if (buckets[b])
            groups.set(b >> shift);
    return groups;
}

struct DirtyPlan {
    const DirtySlot* slot = nullptr;
    std::uint8_t shift = 0;
    BucketBits groups;
    std::size_t group_count = 0;

    void set_shift(std::uint8_t s) {
        shift = s;
        groups = coarsen(slot->buckets, s);
        group_count = groups.count();
    }
    bool use_list() const { return 2 * group_count <= bitmap_bytes(shift); }
    std::size_t size() const {
        return kDirtyEntryHeader + (use_list() ? 2 * group_count : bitmap_bytes(shift));
    }
};

} // namespace

std::vector<std::uint8_t> encode_dirty(std::span<const DirtySlot> dirty, std::size_t budget) {
    std::vector<DirtyPlan> plan;
    for (const auto& d : dirty) {
        if (d.buckets.none() || d.slot >= NLB_RULE_SLOTS)
            continue;
        DirtyPlan p;
        p.slot = &d;
        p.set_shift(0);
        plan.push_back(p);
    }
    auto total = [&] {
        std::size_t t = 0;
        for (const auto& p : plan)
            t += p.size();
        return t;
    };
    // Widen the largest entry one step at a time: bounded by kMaxShift steps per entry, and
    // NLB_RULE_SLOTS entries at full width (7 bytes each) fit any budget we use.
    while (total() > budget) {
        DirtyPlan* widest = nullptr;
        for (auto& p : plan)
            if (p.shift < kMaxShift && (!widest || p.size() > widest->size()))
                widest = &p;
        if (!widest)
            break;
        widest->set_shift(static_cast<std::uint8_t>(widest->shift + 1));
    }
    std::vector<std::uint8_t> out;
    Writer w(out);
    for (const auto& p : plan) {
        w.u8(p.slot->slot);
        w.u8(p.shift);
        if (p.use_list()) {
            w.u8(kFormatList);
            w.u8(0);
            w.u16(static_cast<std::uint16_t>(p.group_count));
            for (std::uint32_t g = 0; g < groups_at(p.shift); ++g)
                if (p.groups[g])
                    w.u16(static_cast<std::uint16_t>(g));
        } else {
            w.u8(kFormatBitmap);
            w.u8(0);
            w.u16(static_cast<std::uint16_t>(bitmap_bytes(p.shift)));
            for (std::size_t i = 0; i < bitmap_bytes(p.shift); ++i) {
                std::uint8_t byte = 0;
                for (std::uint32_t bit = 0; bit < 8; ++bit) {
                    const auto g = static_cast<std::uint32_t>(i * 8 + bit);
                    if (g < groups_at(p.shift) && p.groups[g])
                        byte = static_cast<std::uint8_t>(byte | (0x80u >> bit));
                }
                w.u8(byte);
            }
        }
    }
    return out;
}

DecodeError decode_dirty_section(std::span<const std::uint8_t> body, Heartbeat& hb) {
    Reader r(body);
    std::bitset<NLB_RULE_SLOTS> seen;
    while (r.left() > 0) {
        const auto slot = r.u8();
        const auto shift = r.u8();
        const auto format = r.u8();
        r.u8();
        const auto count = r.u16();
        if (!r.ok())
            return DecodeError::truncated;
        if (slot >= NLB_RULE_SLOTS || shift > kMaxShift || seen[slot])
            return DecodeError::bad_field;
        seen.set(slot);
        const std::uint32_t groups = groups_at(shift);
        BucketBits group_bits;
        if (format == kFormatList) {
            if (count > groups)
                return DecodeError::bad_length;
            const auto data = r.bytes(std::size_t{count} * 2);
            if (!r.ok())
                return DecodeError::truncated;
            for (std::size_t i = 0; i < count; ++i) {
                const std::uint32_t g = (std::uint32_t{data[2 * i]} << 8) | data[2 * i + 1];
                if (g >= groups)
                    return DecodeError::bad_field;
                group_bits.set(g);
            }
        } else if (format == kFormatBitmap) {
            if (count != bitmap_bytes(shift))
                return DecodeError::bad_length;
            const auto data = r.bytes(count);
            if (!r.ok())
                return DecodeError::truncated;
            for (std::uint32_t g = 0; g < groups; ++g)
                if (data[g / 8] & (0x80u >> (g % 8)))
                    group_bits.set(g);
        } else {
            return DecodeError::bad_field;
        }
        DirtySlot d{slot, {}};
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (group_bits[b >> shift])
                d.buckets.set(b);
        if (d.buckets.any())
            hb.dirty.push_back(d);
    }
    return DecodeError::none;
}

} // namespace nlb
