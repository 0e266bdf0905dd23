// The agent's configuration (/etc/nlb/nlb.json, DESIGN.md §5; every key in docs/config.md):
// parsed strictly, so that a typo never silently becomes a default. Every error is one line
// that names the key path and the problem: `port_rules[1].ports: first port 90 above last
// port 80`.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster_mac.hpp"
#include "dataplane_tables.hpp"
#include "health_config.hpp"
#include "rules.hpp"

namespace nlb {

// One line, naming the key path ("cluster.heartbeat_ms: 50 below the minimum 100") or, for a
// file that is no JSON, the place ("nlb.json: line 3, column 5: syntax error ...").
// Control characters that a JSON escape put into a quoted key or value come out as escapes
// (\n, \r, \t, \xNN), so the message stays one line (a backslash is left as it is, so that a
// message wrapped in another is not escaped twice).
class ConfigError : public std::runtime_error {
  public:
    explicit ConfigError(const std::string& what) : std::runtime_error(one_line(what)) {}
    explicit ConfigError(const char* what) : ConfigError(std::string(what)) {}

  private:
    static std::string one_line(const std::string& text) {
        static constexpr char kHex[] = "0123456789abcdef";
        std::string out;
        out.reserve(text.size());
        for (char c : text) {
            const auto byte = static_cast<unsigned char>(c);
            if (c == '\n')
                out += "\\n";
            else if (c == '\r')
                out += "\\r";
            else if (c == '\t')
                out += "\\t";
            else if (byte < 0x20 || byte == 0x7f)
                out += std::string("\\x") + kHex[byte >> 4] + kHex[byte & 0xf];
            else
                out += c;
        }
        return out;
    }
};

// Bounds (docs/config.md). A period under 100 ms floods the segment with heartbeats for no
// gain; over 10 s failover takes minutes. Tolerance 1 would call a host dead on one lost frame.
inline constexpr std::uint32_t kMinHeartbeatMs = 100;
inline constexpr std::uint32_t kMaxHeartbeatMs = 10000;
inline constexpr std::uint32_t kMinHeartbeatTolerance = 2;
inline constexpr std::uint32_t kMaxHeartbeatTolerance = 100;
inline constexpr std::uint32_t kMaxCleanupDelayS = 86400;
inline constexpr std::uint8_t kMaxLoadWeight = 100;
inline constexpr std::uint32_t kDefaultOpeningConnections = 262144;
inline constexpr std::uint32_t kDefaultEstablishedConnections = 262144;
inline constexpr std::uint32_t kMinConnectionTable = 1024;
inline constexpr std::uint32_t kMaxConnectionTable = 16777216;
// The IGMP querier's query interval: RFC 3376's default is 125 s; an hour still refreshes the
// switches' group state (they age it out after about twice the interval).
inline constexpr std::uint32_t kDefaultQueryIntervalS = 125;
inline constexpr std::uint32_t kMinQueryIntervalS = 1;
inline constexpr std::uint32_t kMaxQueryIntervalS = 3600;
// 802.1Q: 0 tags priority only, 4095 is reserved.
inline constexpr std::uint16_t kMaxVlan = 4094;

struct ClusterConfig {
    IpAddress ip;                // the cluster IP: IPv4, the cluster MAC derives from it
    std::vector<IpAddress> vips; // additional VIPs (IPv4 or IPv6), cluster IP not repeated
    ClusterMode mode = ClusterMode::unicast;
    std::uint32_t heartbeat_ms = 1000;
    std::uint32_t heartbeat_tolerance = 5;
    std::optional<std::string> key_file; // none: heartbeats are not authenticated
    // A second key accepted (never used to sign) while the cluster's key is rotated.
    std::optional<std::string> rotation_key_file;
    bool remote_control = false;
    // Beside remote_control: `nlbadm --cluster ... push` may change this host's shared
    // configuration (docs/staged-config.md, "Pushing").
    bool remote_config = false;
    std::uint32_t cleanup_delay_s = 300;
    // The seed of the bucket hash, when the operator sets one; none: derived from the key of
    // key_file, or the fixed default without one (engine_config_of).
    std::optional<std::uint32_t> hash_seed;
    // igmp mode only: this host offers to be the segment's IGMP querier (the lowest address
    // among the queriers sends), for segments where no router queries and snooping switches
    // would flood the cluster's MAC or forget the group.
    bool igmp_querier = false;
    std::uint32_t igmp_query_interval_s = kDefaultQueryIntervalS; // igmp_querier only
    // The VLAN the cluster lives on when the dataplane sits on a trunk (802.1Q id 1..4094);
    // 0: untagged. Frames of other VLANs pass the dataplane untouched.
    std::uint16_t vlan = 0;
    // The hosts' dedicated IPs, where their agents answer on the second path: what a host
    // that hears nobody (restarted behind a port deaf and mute at once) sends its heartbeats
    // to. Not in the fingerprint and changed live by a reload: hosts may hold different lists
    // while one joins. This host's own address may be listed.
    std::vector<IpAddress> peers;
    bool operator==(const ClusterConfig&) const = default;
};

enum class InitialState { started, stopped, suspended };

struct HostConfig {
    std::uint8_t priority = 1; // 1..NLB_MAX_HOSTS
    IpAddress dedicated_ip;    // never a VIP
    InitialState initial_state = InitialState::started;
    std::optional<std::string> interface; // set: attach at start; none: wait for nlbadm attach
    // Entries per family of the dataplane's connection tables (docs/dataplane.md): opening
    // (an LRU of connections not yet established) and established (never evicted).
    std::uint32_t opening_connections = kDefaultOpeningConnections;
    std::uint32_t established_connections = kDefaultEstablishedConnections;
    // cluster.vlan only: where the stack meets the cluster's VLAN, when that is not a VLAN
    // interface on the attached one (a VLAN-aware bridge's port, a renamed or stand-in link);
    // none: the VLAN interface on the attached interface, found at attach.
    std::optional<std::string> vlan_interface;
    bool operator==(const HostConfig&) const = default;
};

// A port rule's `load_feedback` (docs/load-feedback.md): what this host measures of its load,
// and how its effective weight follows it. Host-local, like load_weight.
enum class LoadMetric { connections, cpu, probe_latency, exec };
const char* to_string(LoadMetric metric);
inline constexpr std::uint32_t kMinFeedbackIntervalMs = 500;
inline constexpr std::uint32_t kMaxFeedbackIntervalMs = 3600000;
struct LoadFeedbackConfig {
    LoadMetric metric = LoadMetric::connections;
    std::uint32_t interval_ms = 2000; // at most one weight change per interval
    double sensitivity = 0.1;         // relative change of the effective weight that counts
    std::uint8_t min_weight = 10;     // the effective weight never goes below (0..100)
    // exec: argv, no shell, run as `user`, killed at timeout_ms; prints one number.
    std::vector<std::string> command;
    std::string user = "nobody";
    std::uint32_t timeout_ms = 1000;
    bool operator==(const LoadFeedbackConfig&) const = default;
};

// Protocol, RuleMode and Affinity are the engine's (rules.hpp, via dataplane_tables.hpp): one
// definition for the config, the engine and the tables.
struct PortRuleConfig {
    std::optional<IpAddress> vip; // none: "all" VIPs; else the cluster IP or one of vips
    std::uint16_t first_port = 0;
    std::uint16_t last_port = 65535;
    Protocol protocol = Protocol::both;
    RuleMode mode = RuleMode::multiple;
    Affinity affinity = Affinity::single;    // meaningful for `multiple` only
    std::optional<std::uint8_t> load_weight; // `multiple` only; none: "equal"
    std::uint8_t handling_priority = 1;      // `single` only; defaults to host.priority
    // Host-local, like load_weight: false = this host takes no new connections of the rule
    // and finishes the ones it has (nlbadm drain, at attach and on reload).
    bool enabled = true;
    std::optional<LoadFeedbackConfig> load_feedback; // `multiple` only
    bool operator==(const PortRuleConfig&) const = default;
};

// `"metrics": {"listen": "127.0.0.1:9650"}`: where the agent serves its metrics.
struct MetricsConfig {
    IpAddress address;
    std::uint16_t port = 9650;
    std::string listen() const; // "127.0.0.1:9650", "[::1]:9650"
    bool operator==(const MetricsConfig&) const = default;
};

struct Config {
    ClusterConfig cluster;
    HostConfig host;
    std::vector<PortRuleConfig> port_rules; // at most NLB_MAX_RULES, none overlapping
    std::optional<MetricsConfig> metrics;
    std::optional<HealthConfig> health; // none: no probes (docs/health.md)
    bool operator==(const Config&) const = default;
};

// Throws ConfigError. `source` names the text in JSON syntax errors (the file name).
Config parse_config(std::string_view json_text, std::string_view source = "config");
// Reads and parses a file; throws ConfigError ("/etc/nlb/nlb.json: No such file or directory").
Config load_config(const std::string& path);

// The effective configuration, every default filled in; parse_config(to_json(c).dump()) == c.
nlohmann::json to_json(const Config& config);

// The dataplane's VIP list (cluster IP first, then vips in order) and rule list (in order),
// hashed with `flow_seed` (EngineConfig's cluster.flow_seed: it needs the key file's key);
// `before`: the layout of the running tables these replace live (DataplaneTables).
DataplaneTables tables_of(const Config& config, std::uint32_t flow_seed = NLB_FLOW_SEED,
                          const VipLayout* before = nullptr);

const char* to_string(InitialState state);
const char* to_string(RuleMode mode);
const char* to_string(Affinity affinity);
const char* to_string(Protocol protocol);

// Linux's rule for interface names: 1..15 bytes, not "." or "..", no '/', ':' or whitespace.
bool is_valid_interface_name(std::string_view name);

} // namespace nlb
