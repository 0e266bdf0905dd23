// The dirty-bucket section of a heartbeat (docs/convergence.md, "Dirty buckets"): per rule
// slot, the buckets the sender still serves connections in after losing them, as a list of
// bucket groups or a bitmap of them; groups widen until the section fits the frame, and when
// one whole group per slot is still too much, slots go whole into one set of slots.
#include <algorithm>
#include <array>
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
// Every bucket of each slot in a bitmap over the slots (2026-12-06). Readers that predate it
// reject the frame, which is what they did with every frame that needs it: those were longer
// than kHeartbeatMaxSize.
constexpr std::uint8_t kFormatSlots = 2;
constexpr std::size_t kDirtyEntryHeader = 6;
constexpr std::size_t kSlotsBitmap = (NLB_RULE_SLOTS + 7) / 8;
static_assert(kDirtyEntryHeader + kSlotsBitmap == kDirtyMinSection);
// A one-byte bitmap (shifts 9 to 12): the least a slot's own entry costs.
constexpr std::size_t kEntryFloor = kDirtyEntryHeader + 1;

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
    bool whole = false; // in the slots entry

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
        bool slots_entry = false;
        for (const auto& p : plan) {
            slots_entry = slots_entry || p.whole;
            t += p.whole ? 0 : p.size();
        }
        return t + (slots_entry ? kDirtyMinSection : 0);
    };
    // Widen the largest entry one step at a time while widening saves bytes: bounded by
    // kMaxShift steps per entry. Frames this fits are the same as before the slots entry.
    while (total() > budget) {
        DirtyPlan* widest = nullptr;
        for (auto& p : plan)
            if (p.size() > kEntryFloor && (!widest || p.size() > widest->size()))
                widest = &p;
        if (!widest)
            break;
        widest->set_shift(static_cast<std::uint8_t>(widest->shift + 1));
    }
    // Every entry at its floor and still too much (64 hosts, 32 rules, every optional
    // section: 33 entries take 231 bytes, about 60 are left). Slots go whole into the slots
    // entry, first those with every group dirty (nothing is lost), until the rest fits: at
    // worst all of them, kDirtyMinSection bytes. Never dropped: a bucket reported clean that is
    // dirty is one whose connections the new owner resets.
    for (const bool lossless : {true, false})
        for (auto& p : plan) {
            if (total() <= budget)
                break;
            if (!p.whole && (!lossless || p.group_count == groups_at(p.shift)))
                p.whole = true;
        }
    std::vector<std::uint8_t> out;
    Writer w(out);
    std::array<std::uint8_t, kSlotsBitmap> whole{};
    for (const auto& p : plan) {
        if (p.whole) {
            whole[p.slot->slot / 8] =
                static_cast<std::uint8_t>(whole[p.slot->slot / 8] | (0x80u >> (p.slot->slot % 8)));
            continue;
        }
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
    if (std::any_of(whole.begin(), whole.end(), [](std::uint8_t b) { return b != 0; })) {
        // Slot 0 and shift 12 in its head: one group, the whole slot, as for each slot named.
        w.u8(0);
        w.u8(kMaxShift);
        w.u8(kFormatSlots);
        w.u8(0);
        w.u16(static_cast<std::uint16_t>(kSlotsBitmap));
        out.insert(out.end(), whole.begin(), whole.end());
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
        if (format == kFormatSlots) {
            if (slot != 0 || shift != kMaxShift)
                return DecodeError::bad_field;
            if (count != kSlotsBitmap)
                return DecodeError::bad_length;
            const auto data = r.bytes(count);
            if (!r.ok())
                return DecodeError::truncated;
            // Each slot once, whichever entry names it; no slot past the last.
            for (std::uint32_t s = 0; s < 8 * kSlotsBitmap; ++s) {
                if (!(data[s / 8] & (0x80u >> (s % 8))))
                    continue;
                if (s >= NLB_RULE_SLOTS || seen[s])
                    return DecodeError::bad_field;
                seen.set(s);
                DirtySlot d{static_cast<std::uint8_t>(s), {}};
                d.buckets.set();
                hb.dirty.push_back(d);
            }
            continue;
        }
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
