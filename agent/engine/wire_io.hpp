// Big-endian writing and bounds-checked reading of the heartbeat and map-chunk wire formats
// (heartbeat_codec.cpp, map_chunk_codec.cpp). Internal to the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace nlb::wire {

class Writer {
  public:
    explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v) {
        u8(static_cast<std::uint8_t>(v >> 8));
        u8(static_cast<std::uint8_t>(v));
    }
    void u32(std::uint32_t v) {
        u16(static_cast<std::uint16_t>(v >> 16));
        u16(static_cast<std::uint16_t>(v));
    }
    void u64(std::uint64_t v) {
        u32(static_cast<std::uint32_t>(v >> 32));
        u32(static_cast<std::uint32_t>(v));
    }
    // A section's header: type, a reserved byte, the body's length.
    void section(std::uint8_t type, std::size_t length) {
        u8(type);
        u8(0);
        u16(static_cast<std::uint16_t>(length));
    }

  private:
    std::vector<std::uint8_t>& out_;
};

// Bounds-checked big-endian reader over a span; a read past the end fails and poisons it.
class Reader {
  public:
    explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
    bool ok() const { return ok_; }
    std::size_t left() const { return ok_ ? in_.size() - pos_ : 0; }
    std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(take(2)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(take(4)); }
    std::uint64_t u64() { return take(8); }
    std::span<const std::uint8_t> bytes(std::size_t n) {
        if (!ok_ || n > in_.size() - pos_) {
            ok_ = false;
            return {};
        }
        auto s = in_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

  private:
    std::uint64_t take(std::size_t n) {
        if (!ok_ || n > in_.size() - pos_) {
            ok_ = false;
            return 0;
        }
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i)
            v = (v << 8) | in_[pos_ + i];
        pos_ += n;
        return v;
    }

    std::span<const std::uint8_t> in_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

} // namespace nlb::wire
