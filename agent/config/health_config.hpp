// `"health"` in nlb.json (docs/health.md): this host's health probes and panic_percent. Host-
// local: not in the rules fingerprint, may differ between hosts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane_tables.hpp"

namespace nlb {

enum class ProbeType { tcp, http, exec };

inline constexpr std::uint32_t kMinProbeIntervalMs = 100;
inline constexpr std::uint32_t kMaxProbeIntervalMs = 3600000;
inline constexpr std::uint32_t kMinProbeTimeoutMs = 10;
inline constexpr std::uint32_t kMaxProbeRiseFall = 100;
inline constexpr std::size_t kMaxProbes = 32;
inline constexpr std::size_t kMaxProbeName = 64;
inline constexpr std::size_t kMaxExecArgs = 64;

struct ProbeConfig {
    std::string name; // unique; the `probe` label of the metrics
    ProbeType type = ProbeType::tcp;
    // tcp: `address` (none: host.dedicated_ip) and `port`; http: parsed from `url`.
    std::optional<IpAddress> address;
    std::uint16_t port = 0;
    // http: `url` as written, and its parts. Only an IP literal as host: a name would need a
    // resolver, which blocks or is one more moving part in the path of every check.
    std::string url;
    std::string http_host; // the Host header: the URL's authority
    std::string http_path = "/";
    std::uint16_t expect_status = 200;
    // exec: argv, no shell; run as `user`.
    std::vector<std::string> command;
    std::string user = "nobody";
    std::uint32_t interval_ms = 1000;
    std::uint32_t timeout_ms = 500;
    std::uint32_t rise = 2;
    std::uint32_t fall = 3;
    std::optional<std::vector<std::uint16_t>> ports; // none: every rule
    bool operator==(const ProbeConfig&) const = default;
};

struct HealthConfig {
    std::vector<ProbeConfig> probes;
    std::uint8_t panic_percent = 0; // 0..100
    bool operator==(const HealthConfig&) const = default;
};

const char* to_string(ProbeType type);

} // namespace nlb
