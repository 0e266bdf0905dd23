#include "remote_protocol.hpp"

#include <cstring>

namespace nlb::remote {

namespace {

// Requests are flat objects ({"command": "enable", "port": 80}); answers nest a few levels
// (map → rules → buckets_per_owner). Deeper is no document of ours.
constexpr int kMaxRequestDepth = 1;
constexpr int kMaxAnswerDepth = 16;

void put_u32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

std::uint32_t get_u32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
           std::uint32_t{p[3]};
}

void put_u64(std::uint8_t* p, std::uint64_t v) {
    put_u32(p, static_cast<std::uint32_t>(v >> 32));
    put_u32(p + 4, static_cast<std::uint32_t>(v));
}

std::uint64_t get_u64(const std::uint8_t* p) {
    return std::uint64_t{get_u32(p)} << 32 | get_u32(p + 4);
}

struct TooDeep {};

// Parses JSON text no deeper than `max_depth` (0: scalars only, 1: an object of scalars...).
// Throws nlohmann::json::exception or TooDeep.
nlohmann::json parse_bounded(std::span<const std::uint8_t> text, int max_depth) {
    auto bounded = [max_depth](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
        if ((event == nlohmann::json::parse_event_t::object_start ||
             event == nlohmann::json::parse_event_t::array_start) &&
            depth >= max_depth)
            throw TooDeep{};
        return true;
    };
    return nlohmann::json::parse(text.begin(), text.end(), bounded);
}

void put_u16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t get_u16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

// The checks requests and answers share, up to and including the HMAC. `reply`: what the
// reply address must be (a request: its source; an answer: nlbadm's socket). Sets
// `signed_with` to the key whose MAC matched.
Drop check_common(std::span<const std::uint8_t> d, std::size_t max_size, Type type,
                  std::uint32_t cluster_ip, const Endpoint& reply, const HostKeys& keys, Header& h,
                  HostKeys::Which& signed_with) {
    if (d.size() > max_size)
        return Drop::oversize;
    // The version before the length: an older nlbadm's request (shorter header) is counted
    // as what it is.
    if (d.size() < 5 || get_u32(d.data()) != kMagic)
        return Drop::malformed;
    if (d[4] != kVersion)
        return Drop::version;
    if (d.size() < kHeaderSize + kMacSize || d[5] != static_cast<std::uint8_t>(type) || d[7] != 0 ||
        d[42] != 0 || d[43] != 0)
        return Drop::malformed;
    h.type = type;
    h.priority = d[6];
    std::memcpy(&h.cluster_ip, d.data() + 8, 4);
    h.timestamp_ms = static_cast<std::int64_t>(get_u64(d.data() + 12));
    std::memcpy(h.nonce.data(), d.data() + 20, h.nonce.size());
    std::memcpy(&h.reply.ip, d.data() + 36, 4);
    h.reply.port = get_u16(d.data() + 40);
    if (h.cluster_ip != cluster_ip)
        return Drop::other_cluster;
    // Before the HMAC, as a cheap check: a datagram whose claimed reply address is not where
    // it came from is dropped whatever its MAC. A genuine request copied by someone on the
    // path and sent from elsewhere is among them; it then neither runs nor uses up its
    // nonce, so the genuine one still can.
    if (h.reply != reply)
        return Drop::wrong_source;
    const auto body = d.first(d.size() - kMacSize), mac = d.last(kMacSize);
    if (keys.cluster.verify(body, mac)) {
        signed_with = HostKeys::Which::cluster;
        return Drop::none;
    }
    if (keys.rotation && keys.rotation->verify(body, mac)) {
        signed_with = HostKeys::Which::rotation;
        return Drop::none;
    }
    return Drop::bad_mac;
}

std::span<const std::uint8_t> payload_of(std::span<const std::uint8_t> d) {
    return d.subspan(kHeaderSize, d.size() - kHeaderSize - kMacSize);
}

} // namespace

const char* to_string(Drop drop) {
    switch (drop) {
    case Drop::none:
        return "none";
    case Drop::oversize:
        return "oversize";
    case Drop::malformed:
        return "malformed";
    case Drop::version:
        return "version";
    case Drop::other_cluster:
        return "other_cluster";
    case Drop::wrong_source:
        return "wrong_source";
    case Drop::bad_mac:
        return "bad_mac";
    case Drop::stale:
        return "stale";
    case Drop::before_start:
        return "before_start";
    case Drop::replay:
        return "replay";
    case Drop::replay_full:
        return "replay_full";
    case Drop::unsaved:
        return "unsaved";
    case Drop::other_host:
        return "other_host";
    case Drop::bad_payload:
        return "bad_payload";
    }
    return "?";
}

std::vector<std::uint8_t> encode(const Header& h, const std::string& payload,
                                 const ClusterKey& key) {
    std::vector<std::uint8_t> out(kHeaderSize + payload.size() + kMacSize);
    put_u32(out.data(), kMagic);
    out[4] = kVersion;
    out[5] = static_cast<std::uint8_t>(h.type);
    out[6] = h.priority;
    out[7] = 0;
    std::memcpy(out.data() + 8, &h.cluster_ip, 4);
    put_u64(out.data() + 12, static_cast<std::uint64_t>(h.timestamp_ms));
    std::memcpy(out.data() + 20, h.nonce.data(), h.nonce.size());
    std::memcpy(out.data() + 36, &h.reply.ip, 4);
    put_u16(out.data() + 40, h.reply.port);
    out[42] = out[43] = 0;
    std::memcpy(out.data() + kHeaderSize, payload.data(), payload.size());
    const auto body = std::span<const std::uint8_t>(out).first(out.size() - kMacSize);
    const auto mac = key.mac(body);
    std::memcpy(out.data() + out.size() - kMacSize, mac.data(), kMacSize);
    return out;
}

Received check_request(std::span<const std::uint8_t> d, const Endpoint& source,
                       std::uint32_t cluster_ip, std::uint8_t my_priority, const HostKeys& keys,
                       std::int64_t now_ms, ReplayGuard& guard) {
    Received r;
    r.drop = check_common(d, kMaxRequestSize, Type::request, cluster_ip, source, keys, r.header,
                          r.signed_with);
    if (r.drop != Drop::none)
        return r;
    const Header& h = r.header;
    // Written as two comparisons so that no timestamp, however far off, overflows.
    if (h.timestamp_ms < now_ms - kWindowMs || h.timestamp_ms > now_ms + kWindowMs) {
        r.drop = Drop::stale;
        return r;
    }
    switch (guard.check(h.nonce, h.timestamp_ms, now_ms)) {
    case ReplayGuard::Verdict::fresh:
        break;
    case ReplayGuard::Verdict::replay:
        r.drop = Drop::replay;
        return r;
    case ReplayGuard::Verdict::full:
        r.drop = Drop::replay_full;
        return r;
    case ReplayGuard::Verdict::before_start:
        r.drop = Drop::before_start;
        return r;
    case ReplayGuard::Verdict::unsaved:
        r.drop = Drop::unsaved;
        return r;
    }
    if (h.priority != 0 && h.priority != my_priority) {
        r.drop = Drop::other_host;
        return r;
    }
    try {
        r.payload = parse_bounded(payload_of(d), kMaxRequestDepth);
    } catch (...) {
        r.drop = Drop::bad_payload;
        return r;
    }
    if (!r.payload.is_object() || !r.payload.contains("command") ||
        !r.payload["command"].is_string()) {
        r.payload = nullptr;
        r.drop = Drop::bad_payload;
    }
    return r;
}

Received check_answer(std::span<const std::uint8_t> d, std::uint32_t cluster_ip, const Nonce& nonce,
                      const Endpoint& reply, std::uint8_t from, const ClusterKey& key) {
    Received r;
    // nlbadm holds one key: the one its request was signed with, which a host answers with.
    const HostKeys keys(key);
    r.drop = check_common(d, kMaxAnswerSize, Type::answer, cluster_ip, reply, keys, r.header,
                          r.signed_with);
    if (r.drop != Drop::none)
        return r;
    // A copy of an answer to an earlier command carries that command's nonce.
    if (r.header.nonce != nonce) {
        r.drop = Drop::replay;
        return r;
    }
    if (r.header.priority == 0 || (from != 0 && r.header.priority != from)) {
        r.drop = Drop::other_host;
        return r;
    }
    try {
        r.payload = parse_bounded(payload_of(d), kMaxAnswerDepth);
    } catch (...) {
        r.drop = Drop::bad_payload;
        return r;
    }
    if (!r.payload.is_object() || !r.payload.contains("ok") || !r.payload["ok"].is_boolean()) {
        r.payload = nullptr;
        r.drop = Drop::bad_payload;
    }
    return r;
}

std::string answer_payload(const std::string& command, nlohmann::json response,
                           const Responder& responder) {
    if (command == "map" && response.contains("result") && response["result"].is_object() &&
        response["result"].contains("rules") && response["result"]["rules"].is_array())
        for (auto& rule : response["result"]["rules"])
            if (rule.is_object())
                rule.erase("owners");
    auto with_responder = [&](nlohmann::json answer) {
        answer["host"] = {{"priority", responder.priority}, {"address", responder.address}};
        answer["members"] = responder.members;
        // Invalid UTF-8 from anywhere (an interface name?) is replaced, never thrown.
        return answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    std::string text = with_responder(std::move(response));
    if (kHeaderSize + text.size() + kMacSize <= kMaxAnswerSize)
        return text;
    return with_responder({{"ok", false},
                           {"error", command + ": answer too large for remote control (" +
                                         std::to_string(text.size()) + " bytes); run nlbadm " +
                                         command + " on the host"}});
}

} // namespace nlb::remote
