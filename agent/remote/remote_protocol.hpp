// The remote-control wire format (docs/remote.md): one UDP datagram per request (nlbadm →
// every host, port 2504 of the cluster IP) and per answer (host → nlbadm). Encoding, and the
// checks every received datagram goes through, cheapest first: size, header, cluster, HMAC,
// timestamp window, replay, then the JSON payload. Pure: the clock and the replay memory are
// passed in, nothing here touches a socket.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster_key.hpp"
#include "replay_guard.hpp"

namespace nlb::remote {

inline constexpr std::uint16_t kPort = 2504;
inline constexpr std::uint32_t kMagic = 0x4e4c4252; // "NLBR"
// 2: the reply address is in the signed header (1 answered the datagram's source address,
// which anyone can forge). Other versions are dropped and counted, never answered.
inline constexpr std::uint8_t kVersion = 2;
// magic 4, version 1, type 1, priority 1, reserved 1, cluster IP 4, timestamp 8, nonce 16,
// reply IP 4, reply port 2, reserved 2
inline constexpr std::size_t kHeaderSize = 44;
inline constexpr std::size_t kMacSize = 32;
// A request is one flat JSON object of a few fields: a kilobyte is far more than any needs,
// and small enough that a datagram never needs fragmenting.
inline constexpr std::size_t kMaxRequestSize = 1024;
// An answer must fit one UDP datagram (65507 bytes over IPv4); the margin keeps it clear of
// that limit whatever the IP options.
inline constexpr std::size_t kMaxAnswerSize = 60 * 1024;
// How far a request's timestamp may be from the host's clock, either way.
inline constexpr std::int64_t kWindowMs = 30000;

enum class Type : std::uint8_t { request = 1, answer = 2 };

// An IPv4 UDP address.
struct Endpoint {
    std::uint32_t ip = 0;   // network byte order, as IpAddress::words[0] and sin_addr
    std::uint16_t port = 0; // host byte order
    bool operator==(const Endpoint&) const = default;
};

struct Header {
    Type type = Type::request;
    // Request: the host it is for (0: every host). Answer: the host that answers.
    std::uint8_t priority = 0;
    std::uint32_t cluster_ip = 0;  // network byte order, as IpAddress::words[0]
    std::int64_t timestamp_ms = 0; // sender's CLOCK_REALTIME, ms since the epoch
    Nonce nonce{};                 // request: random; answer: the request's
    // Request: where its answers go, nlbadm's socket; a host answers there only, and only
    // when the request came from there. Answer: the request's, where it is sent.
    Endpoint reply;
};

// Header, payload (JSON text), then the HMAC of both under the key's remote-control key.
std::vector<std::uint8_t> encode(const Header& header, const std::string& payload,
                                 const ClusterKey& key);

// The keys a host accepts requests under: the cluster key and, while the cluster's key is
// rotated (cluster.rotation_key_file), a second one. An answer is signed with the key its
// request was signed with: nlbadm holds only one of the two.
struct HostKeys {
    enum class Which : std::uint8_t { cluster, rotation };

    explicit HostKeys(ClusterKey cluster_key, std::optional<ClusterKey> rotation_key = {})
        : cluster(std::move(cluster_key)), rotation(std::move(rotation_key)) {}
    const ClusterKey& operator[](Which which) const {
        return which == Which::rotation && rotation ? *rotation : cluster;
    }

    ClusterKey cluster;
    std::optional<ClusterKey> rotation;
};

// Why a datagram was dropped; each is a counter of the server (docs/remote.md).
enum class Drop {
    none,
    oversize,      // larger than a request (or an answer) may be
    malformed,     // too short, wrong magic, type or reserved bytes
    version,       // another protocol version (an older or newer nlbadm)
    other_cluster, // for another cluster IP
    wrong_source,  // not sent from the reply address it names (answer: not to ours)
    bad_mac,       // not signed with this cluster's key (nor the rotation key)
    stale,         // timestamp outside the window
    before_start,  // timestamp not after the replay memory's floor (kept across restarts)
    replay,        // nonce seen within the window
    replay_full,   // the replay memory is full of in-window nonces
    unsaved,       // the replay memory's floor could not be saved: not run, see ReplayGuard
    other_host,    // authenticated, fresh, for another host
    bad_payload,   // authenticated, but no request object (bad JSON, nesting, no command)
};

inline constexpr std::size_t kDropReasons = static_cast<std::size_t>(Drop::bad_payload) + 1;

const char* to_string(Drop drop);

struct Received {
    Drop drop = Drop::none;
    Header header;
    nlohmann::json payload;                                 // set when drop == none
    HostKeys::Which signed_with = HostKeys::Which::cluster; // a request's, once its MAC passed
};

// A request as a host receives it from `source` (the datagram's sender, as recvmsg gives
// it). `my_priority` decides other_host; `now_ms` is the host's CLOCK_REALTIME. The nonce of
// a request that passes the timestamp check is remembered in `guard` (whatever the later
// checks say), so that no copy of it passes again.
Received check_request(std::span<const std::uint8_t> datagram, const Endpoint& source,
                       std::uint32_t cluster_ip, std::uint8_t my_priority, const HostKeys& keys,
                       std::int64_t now_ms, ReplayGuard& guard);

// An answer as nlbadm receives it on its socket `reply` (the address its request named): must
// name that address, echo `nonce` (which makes it fresh: the nonce is new for every command)
// and, when `from` is not 0, come from that host.
Received check_answer(std::span<const std::uint8_t> datagram, std::uint32_t cluster_ip,
                      const Nonce& nonce, const Endpoint& reply, std::uint8_t from,
                      const ClusterKey& key);

// Who answers: shown by nlbadm, and the member list tells it which other hosts to expect.
struct Responder {
    std::uint8_t priority = 0;
    std::string address;      // the host's dedicated IP
    std::vector<int> members; // the hosts this one sees in the cluster
};

// The answer payload for `response` ({"ok": ...} as the control socket answers) to `command`:
// the response plus "host" and "members". A `map` result loses its per-bucket "owners"
// arrays (a few hundred KiB; "buckets_per_owner" stays). A payload that still does not fit an
// answer datagram becomes an error answer that says so.
std::string answer_payload(const std::string& command, nlohmann::json response,
                           const Responder& responder);

} // namespace nlb::remote
