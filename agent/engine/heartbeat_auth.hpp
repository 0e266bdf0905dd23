// Heartbeat authentication: HMAC-SHA256 (libcrypto) over the whole frame with the cluster
// key, and the replay guard (per sender: boot nonce + strictly increasing sequence).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <nlb/limits.h>

namespace nlb {

class HeartbeatAuth {
  public:
    // `rotation_key` (may be empty) is accepted too, never used to sign: during a key
    // rotation every host signs with its key_file and accepts both.
    explicit HeartbeatAuth(std::vector<std::uint8_t> key, std::vector<std::uint8_t> rotation_key = {})
        : key_(std::move(key)), rotation_(std::move(rotation_key)) {}

    bool keyed() const { return !key_.empty(); }
    // `frame` was encoded with Heartbeat::kFlagAuthenticated: its last 32 bytes receive the
    // HMAC of everything before them.
    void sign(std::vector<std::uint8_t>& frame) const;
    // True when the last 32 of the first `length` bytes are the HMAC of the bytes before.
    bool verify(std::span<const std::uint8_t> frame, std::size_t length) const;

  private:
    std::vector<std::uint8_t> key_;
    std::vector<std::uint8_t> rotation_;
};

// Remembers, per sender priority, the last few boot nonces and the highest sequence number
// seen in each. A frame is fresh if its nonce is known and its sequence higher than any seen,
// or if its nonce is new (a reboot). A nonce pushed out of the history by newer ones is
// forgotten: replaying a frame from that many reboots ago is possible (documented limit).
class ReplayGuard {
  public:
    enum class Verdict { fresh, new_nonce, replay };
    static constexpr std::size_t kNonceHistory = 8;

    Verdict check(std::uint8_t priority, std::uint64_t nonce, std::uint64_t sequence) const;
    // Records an accepted frame.
    void accept(std::uint8_t priority, std::uint64_t nonce, std::uint64_t sequence);

  private:
    struct Stream {
        std::uint64_t nonce = 0;
        std::uint64_t max_sequence = 0;
        bool used = false;
    };
    struct Sender {
        std::array<Stream, kNonceHistory> streams{};
        std::size_t next = 0; // ring position of the next new nonce
    };
    std::array<Sender, NLB_MAX_HOSTS + 1> senders_{};
};

// Replay protection for frames sent in bursts that the network may reorder (map chunks): per
// sender the current boot nonce, the highest sequence and which of the 64 below it were seen.
// A sequence seen before or older than that window is a replay; a new nonce starts afresh
// (an old boot's frames then pass here, and the engine ignores them: their nonce is not the
// sender's live one). Limit: such a frame resets the window, so the current boot's last 64
// chunks can then be replayed once each; harmless, as a chunk is idempotent and the map it
// belongs to is used only when its digest checks.
class ReplayWindow {
  public:
    static constexpr std::uint64_t kWindow = 64;
    // True (and recorded) when fresh.
    bool accept(std::uint8_t priority, std::uint64_t nonce, std::uint64_t sequence);

  private:
    struct Stream {
        std::uint64_t nonce = 0;
        std::uint64_t max_sequence = 0;
        std::uint64_t seen = 0; // bit k: max_sequence - k was seen
        bool used = false;
    };
    std::array<Stream, NLB_MAX_HOSTS + 1> senders_{};
};

} // namespace nlb
