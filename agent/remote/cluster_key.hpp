// The cluster key as remote control uses it: read from the key file (the format of
// cluster.key_file, what `nlbadm keygen` prints) and turned into a key of its own, so that no
// MAC made for a heartbeat can ever pass as a remote-control MAC or the other way round.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nlb::remote {

// Key files hold 32 to 64 bytes as 64 to 128 hex digits; whitespace is ignored.
inline constexpr std::size_t kMinKeyBytes = 32;
inline constexpr std::size_t kMaxKeyBytes = 64;

// The key in a key file's text; none when it is not 64..128 hex digits (an even count).
std::optional<std::vector<std::uint8_t>> parse_key(std::string_view text);

// Reads a key file: the agent's cluster.key_file and rotation_key_file, and nlbadm's
// --key-file. A file readable or writable by group or others is refused before it is read.
// Throws std::runtime_error with one line naming the file: "PATH: No such file or
// directory", "PATH is readable by group or others: chmod 600 PATH", "PATH: expected 64 to
// 128 hex digits (as nlbadm keygen makes)".
std::vector<std::uint8_t> read_key_file(const std::string& path);

class ClusterKey {
  public:
    // `cluster_key`: the bytes of the key file. The remote-control key is
    // HMAC-SHA256(cluster_key, "nlb remote control v1"); heartbeats use the cluster key itself.
    explicit ClusterKey(std::span<const std::uint8_t> cluster_key);

    using Mac = std::array<std::uint8_t, 32>;
    Mac mac(std::span<const std::uint8_t> data) const;
    // Constant time.
    bool verify(std::span<const std::uint8_t> data, std::span<const std::uint8_t> mac) const;

  private:
    std::array<std::uint8_t, 32> key_{};
};

} // namespace nlb::remote
