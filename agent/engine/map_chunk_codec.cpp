// Map chunks (docs/convergence.md, "Movement"): a base map's encoding in pieces, each in a
// frame of its own ("NLBM"), for a member that lacks the cluster's base map.
#include "heartbeat_codec.hpp"
#include "wire_io.hpp"

namespace nlb {

using wire::Reader;
using wire::Writer;

bool is_map_chunk(std::span<const std::uint8_t> frame) {
    return frame.size() >= 4 && ((std::uint32_t{frame[0]} << 24) | (std::uint32_t{frame[1]} << 16) |
                                 (std::uint32_t{frame[2]} << 8) | frame[3]) == kMapChunkMagic;
}

std::vector<std::uint8_t> encode_map_chunk(const MapChunk& c) {
    std::vector<std::uint8_t> out;
    out.reserve(kMapChunkHeaderSize + c.data.size() + kHeartbeatMacSize);
    Writer w(out);
    w.u32(kMapChunkMagic);
    w.u8(kHeartbeatMajor);
    w.u8(kHeartbeatMinor);
    w.u16(static_cast<std::uint16_t>(kMapChunkHeaderSize));
    w.u16(0); // total length, patched below
    w.u16(c.flags);
    w.u32(c.cluster_ip);
    w.u8(c.priority);
    w.u8(0);
    w.u16(c.index);
    w.u16(c.count);
    w.u16(0);
    w.u64(c.nonce);
    w.u64(c.sequence);
    w.u64(c.map_digest);
    w.u32(c.generation);
    w.u32(c.map_size);
    out.insert(out.end(), c.data.begin(), c.data.end());
    if (c.flags & Heartbeat::kFlagAuthenticated)
        out.resize(out.size() + kHeartbeatMacSize, 0);
    out[8] = static_cast<std::uint8_t>(out.size() >> 8);
    out[9] = static_cast<std::uint8_t>(out.size());
    return out;
}

ChunkDecodeResult decode_map_chunk(std::span<const std::uint8_t> frame) {
    ChunkDecodeResult result;
    auto fail = [&](DecodeError e) {
        result.error = e;
        result.chunk.reset();
        return result;
    };
    Reader r(frame);
    const auto magic = r.u32();
    const auto major = r.u8();
    r.u8();
    const auto header_len = r.u16();
    const auto total_len = r.u16();
    if (!r.ok())
        return fail(DecodeError::truncated);
    if (magic != kMapChunkMagic)
        return fail(DecodeError::bad_magic);
    if (major != kHeartbeatMajor)
        return fail(DecodeError::bad_version);
    if (total_len > frame.size())
        return fail(DecodeError::truncated);
    if (total_len > kHeartbeatMaxSize || header_len < kMapChunkHeaderSize || header_len > total_len)
        return fail(DecodeError::bad_length);
    MapChunk c;
    Reader h(frame.subspan(10, kMapChunkHeaderSize - 10));
    c.flags = h.u16();
    c.cluster_ip = h.u32();
    c.priority = h.u8();
    h.u8();
    c.index = h.u16();
    c.count = h.u16();
    h.u16();
    c.nonce = h.u64();
    c.sequence = h.u64();
    c.map_digest = h.u64();
    c.generation = h.u32();
    c.map_size = h.u32();
    if (!h.ok())
        return fail(DecodeError::truncated);
    if (c.priority < 1 || c.priority > NLB_MAX_HOSTS || c.map_digest == 0 || c.generation == 0)
        return fail(DecodeError::bad_field);
    if (c.map_size == 0 || c.map_size > kMapMaxEncoded ||
        c.count != (c.map_size + kMapChunkData - 1) / kMapChunkData || c.index >= c.count)
        return fail(DecodeError::bad_length);
    std::size_t end = total_len;
    if (c.flags & Heartbeat::kFlagAuthenticated) {
        if (end < header_len + kHeartbeatMacSize)
            return fail(DecodeError::bad_length);
        end -= kHeartbeatMacSize;
    }
    const std::size_t expected = c.index + 1u < c.count
                                     ? kMapChunkData
                                     : c.map_size - std::size_t{c.count - 1u} * kMapChunkData;
    if (end - header_len != expected)
        return fail(DecodeError::bad_length);
    const auto data = frame.subspan(header_len, expected);
    c.data.assign(data.begin(), data.end());
    result.chunk = std::move(c);
    result.length = total_len;
    return result;
}

} // namespace nlb
