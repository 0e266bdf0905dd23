// Remote control's replay memory: the nonces of the requests seen within the timestamp
// window. A request's copy is stale once its timestamp leaves the window, so a nonce need be
// remembered no longer than that. The memory is bounded: when every entry is still within
// the window a new nonce is refused (the request dropped and counted), never remembered by
// growing. Only authenticated requests reach it, so only key holders can fill it. The time
// is passed in.
//
// The nonces live in RAM, so a restarted agent (or a detach and attach) has forgotten them
// while copies of the requests it ran may still be inside the window. What survives is a
// floor: the newest timestamp it accepted, saved in a small state file before the request
// runs. A guard that reads the file refuses every request stamped at or before
// max(that timestamp, its own start): each request run before the restart is among them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>

namespace nlb::remote {

using Nonce = std::array<std::uint8_t, 16>;

class ReplayGuard {
  public:
    enum class Verdict {
        fresh,        // not seen: remembered now
        replay,       // seen within the window
        full,         // not seen, but no room to remember it
        before_start, // stamped at or before the floor: perhaps run before a restart
        unsaved,      // fresh, but the floor could not be saved: not remembered, not to run
    };

    static constexpr std::size_t kDefaultCapacity = 4096;

    // RAM only: a new guard has no floor. `window_ms`: how far a timestamp may be from the
    // clock (either way) and pass.
    explicit ReplayGuard(std::int64_t window_ms, std::size_t capacity = kDefaultCapacity);

    // Kept across restarts in `state_file` (written as `state_file`.tmp, then renamed over
    // it). The floor is the saved timestamp, or `now_ms` (the start) when that is later or
    // the file is missing or unreadable (load_error() says why, unless it is just missing).
    ReplayGuard(std::int64_t window_ms, std::string state_file, std::int64_t now_ms,
                std::size_t capacity = kDefaultCapacity);

    // `timestamp_ms`: the request's own (authenticated) timestamp, already checked to be
    // within the window of `now_ms`. A fresh request whose timestamp is the newest yet is
    // saved before the verdict, so that it is below the floor of every later guard.
    Verdict check(const Nonce& nonce, std::int64_t timestamp_ms, std::int64_t now_ms);

    std::size_t size() const { return seen_.size(); }
    std::size_t capacity() const { return capacity_; }
    // Requests stamped at or before this are refused (before_start).
    std::int64_t floor() const { return floor_; }
    const std::string& state_file() const { return state_file_; }
    const std::string& load_error() const { return load_error_; }
    // The last save's error ("" once a save succeeds).
    const std::string& save_error() const { return save_error_; }

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
    bool save(std::int64_t timestamp_ms);

    std::int64_t window_ms_;
    std::size_t capacity_;
    // nonce → the time after which its request can no longer pass the timestamp check
    std::unordered_map<Nonce, std::int64_t, NonceHash> seen_;
    std::int64_t earliest_expiry_ = 0;

    std::string state_file_; // empty: RAM only
    std::int64_t floor_ = std::numeric_limits<std::int64_t>::min();
    std::int64_t saved_ = std::numeric_limits<std::int64_t>::min(); // in the file now
    std::string load_error_;
    std::string save_error_;
};

} // namespace nlb::remote
