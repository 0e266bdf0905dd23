// libFuzzer: remote control's checks (agent/remote). The input goes through them twice: as a
// raw datagram, as anyone on the network can send (nearly everything stops before the HMAC),
// and, signed with the test key or the rotation key as a request's payload, as only a key
// holder can send, so that the JSON and request checks behind the HMAC are reached too.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "remote_protocol.hpp"

using namespace nlb::remote;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::vector<std::uint8_t> kKeyBytes(32, 0x42);
    static const std::vector<std::uint8_t> kRotationBytes(32, 0x24);
    static const HostKeys kKeys{ClusterKey(kKeyBytes), ClusterKey(kRotationBytes)};
    static const std::uint32_t kClusterIp = htonl(0x0a0a0064);
    static const Endpoint kAdmin{htonl(0x0a0a0101), 40000};
    constexpr std::int64_t kNow = 1'800'000'000'000;
    ReplayGuard guard(kWindowMs, 8);

    const std::span<const std::uint8_t> raw(data, size);
    (void)check_request(raw, kAdmin, kClusterIp, 1, kKeys, kNow, guard);
    (void)check_answer(raw, kClusterIp, Nonce{}, kAdmin, 0, kKeys.cluster);

    Header h;
    h.cluster_ip = kClusterIp;
    h.timestamp_ms = kNow;
    h.priority = size > 0 ? data[0] % 3 : 0;
    h.reply = kAdmin;
    for (std::size_t i = 0; i < h.nonce.size() && i < size; ++i)
        h.nonce[i] = data[i];
    const std::string payload(reinterpret_cast<const char*>(data), size);
    const auto with =
        size > 1 && data[1] & 1 ? HostKeys::Which::rotation : HostKeys::Which::cluster;
    const auto datagram = encode(h, payload, kKeys[with]);
    // From anywhere else it is dropped before anything is remembered.
    if (datagram.size() <= kMaxRequestSize &&
        check_request(datagram, Endpoint{kAdmin.ip, 40001}, kClusterIp, 1, kKeys, kNow, guard)
                .drop != Drop::wrong_source)
        __builtin_trap();
    Received r = check_request(datagram, kAdmin, kClusterIp, 1, kKeys, kNow, guard);
    if (r.drop == Drop::none && r.signed_with != with)
        __builtin_trap();
    if (r.drop == Drop::none) {
        // A request that passed: the answer it would get is shaped from it.
        nlohmann::json response = {{"ok", true}, {"result", r.payload}};
        (void)answer_payload(r.payload.value("command", std::string()), response,
                             Responder{1, "10.10.0.11", {1, 2}});
    }
    // The same datagram again is a replay, whatever it holds.
    Received again = check_request(datagram, kAdmin, kClusterIp, 1, kKeys, kNow, guard);
    if (r.drop == Drop::none && again.drop != Drop::replay)
        __builtin_trap();
    return 0;
}
