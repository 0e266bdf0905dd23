// Remote control's replay memory: the nonces of the requests seen within the timestamp
// window. A request's copy is stale once its timestamp leaves the window, so a nonce need be
// remembered no longer than that. The memory is bounded: when every entry is still within
// the window a new nonce is refused (the request dropped and counted), never remembered by
// growing. Only authenticated requests reach it, so only key holders can fill it. Pure: the
// time is passed in.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <unordered_map>

namespace nlb::remote {

using Nonce = std::array<std::uint8_t, 16>;

class ReplayGuard {
  public:
    enum class Verdict {
        fresh,  // not seen: remembered now
        replay, // seen within the window
        full,   // not seen, but no room to remember it
    };

    static constexpr std::size_t kDefaultCapacity = 4096;

    // `window_ms`: how far a timestamp may be from the clock (either way) and pass.
    explicit ReplayGuard(std::int64_t window_ms, std::size_t capacity = kDefaultCapacity);

    // `timestamp_ms`: the request's own (authenticated) timestamp, already checked to be
    // within the window of `now_ms`.
    Verdict check(const Nonce& nonce, std::int64_t timestamp_ms, std::int64_t now_ms);

    std::size_t size() const { return seen_.size(); }
    std::size_t capacity() const { return capacity_; }

  private:
    struct NonceHash {
        // Nonces are random: any 8 of their bytes are a good hash.
        std::size_t operator()(const Nonce& n) const {
            std::uint64_t h;
            std::memcpy(&h, n.data(), sizeof(h));
            return static_cast<std::size_t>(h);
        }
    };
    void forget_expired(std::int64_t now_ms);

    std::int64_t window_ms_;
    std::size_t capacity_;
    // nonce → the time after which its request can no longer pass the timestamp check
    std::unordered_map<Nonce, std::int64_t, NonceHash> seen_;
    std::int64_t earliest_expiry_ = 0;
};

} // namespace nlb::remote
