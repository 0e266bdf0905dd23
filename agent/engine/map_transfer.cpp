#include "map_transfer.hpp"

#include <algorithm>

namespace nlb {
namespace {

constexpr std::uint8_t kSlotUniform = 0;
constexpr std::uint8_t kSlotSame = 1;
constexpr std::uint8_t kSlotPacked = 2;
constexpr std::uint8_t kSlotRaw = 3;
constexpr std::size_t kPackedBytes = NLB_BUCKETS * 6 / 8;

} // namespace

std::vector<std::uint8_t> encode_map(const ClusterMap& map) {
    std::vector<std::uint8_t> out;
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        const auto& slot = map.slots[s];
        if (std::all_of(slot.begin(), slot.end(), [&](auto o) { return o == slot[0]; })) {
            out.push_back(kSlotUniform);
            out.push_back(slot[0]);
            continue;
        }
        const auto same = std::find(map.slots.begin(), map.slots.begin() + s, slot);
        if (same != map.slots.begin() + s) {
            out.push_back(kSlotSame);
            out.push_back(static_cast<std::uint8_t>(same - map.slots.begin()));
            continue;
        }
        if (std::all_of(slot.begin(), slot.end(),
                        [](auto o) { return o >= 1 && o <= NLB_MAX_HOSTS; })) {
            out.push_back(kSlotPacked);
            for (std::uint32_t b = 0; b < NLB_BUCKETS; b += 4) {
                const std::uint32_t v =
                    (std::uint32_t(slot[b] - 1) << 18) | (std::uint32_t(slot[b + 1] - 1) << 12) |
                    (std::uint32_t(slot[b + 2] - 1) << 6) | std::uint32_t(slot[b + 3] - 1);
                out.push_back(static_cast<std::uint8_t>(v >> 16));
                out.push_back(static_cast<std::uint8_t>(v >> 8));
                out.push_back(static_cast<std::uint8_t>(v));
            }
            continue;
        }
        out.push_back(kSlotRaw);
        out.insert(out.end(), slot.begin(), slot.end());
    }
    return out;
}

std::optional<ClusterMap> decode_map(std::span<const std::uint8_t> in) {
    ClusterMap map;
    std::size_t pos = 0;
    auto need = [&](std::size_t n) { return n <= in.size() - pos; };
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        if (!need(1))
            return std::nullopt;
        auto& slot = map.slots[s];
        switch (in[pos++]) {
        case kSlotUniform:
            if (!need(1) || in[pos] > NLB_MAX_HOSTS)
                return std::nullopt;
            slot.fill(in[pos++]);
            break;
        case kSlotSame:
            if (!need(1) || in[pos] >= s)
                return std::nullopt;
            slot = map.slots[in[pos++]];
            break;
        case kSlotPacked:
            if (!need(kPackedBytes))
                return std::nullopt;
            for (std::uint32_t b = 0; b < NLB_BUCKETS; b += 4, pos += 3) {
                const std::uint32_t v = (std::uint32_t{in[pos]} << 16) |
                                        (std::uint32_t{in[pos + 1]} << 8) | in[pos + 2];
                for (std::uint32_t k = 0; k < 4; ++k)
                    slot[b + k] = static_cast<std::uint8_t>(1 + ((v >> (18 - 6 * k)) & 63u));
            }
            break;
        case kSlotRaw:
            if (!need(NLB_BUCKETS))
                return std::nullopt;
            for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b) {
                if (in[pos] > NLB_MAX_HOSTS)
                    return std::nullopt;
                slot[b] = in[pos++];
            }
            break;
        default:
            return std::nullopt;
        }
    }
    if (pos != in.size())
        return std::nullopt;
    return map;
}

std::size_t chunk_count(std::size_t encoded_size) {
    return (encoded_size + kMapChunkData - 1) / kMapChunkData;
}

std::span<const std::uint8_t> chunk_data(std::span<const std::uint8_t> encoded, std::size_t index) {
    const std::size_t from = index * kMapChunkData;
    if (from >= encoded.size())
        return {};
    return encoded.subspan(from, std::min(kMapChunkData, encoded.size() - from));
}

MapAssembly::Result MapAssembly::add(const MapChunk& c) {
    if (c.map_size == 0 || c.map_size > kMapMaxEncoded || c.count != chunk_count(c.map_size) ||
        c.index >= c.count)
        return Result::mismatch;
    const std::size_t expected = c.index + 1u < c.count
                                     ? kMapChunkData
                                     : c.map_size - std::size_t{c.count - 1u} * kMapChunkData;
    if (c.data.size() != expected)
        return Result::mismatch;
    if (c.map_digest != digest_ || c.map_size != size_) {
        reset();
        digest_ = c.map_digest;
        size_ = c.map_size;
        buffer_.assign(size_, 0);
    }
    if (got_[c.index])
        return Result::duplicate;
    std::copy(c.data.begin(), c.data.end(), buffer_.begin() + std::size_t{c.index} * kMapChunkData);
    got_.set(c.index);
    ++have_;
    return have_ == c.count ? Result::complete : Result::stored;
}

std::optional<ClusterMap> MapAssembly::take() {
    std::optional<ClusterMap> map;
    if (size_ != 0 && have_ == chunk_count(size_)) {
        map = decode_map(buffer_);
        if (map && map->digest() != digest_)
            map.reset();
    }
    reset();
    return map;
}

void MapAssembly::reset() {
    digest_ = 0;
    size_ = 0;
    have_ = 0;
    got_.reset();
    buffer_.clear();
    buffer_.shrink_to_fit();
}

} // namespace nlb
