// Parsing and printing of `"health"` (health_config.hpp) and which port rules a probe guards;
// used by parse_config / to_json and by the agent.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "json_reader.hpp"

namespace nlb {

// Throws ConfigError naming the key ("health.probes[0].url: ..."). `rules` are the parsed
// port rules (a probe's `ports` must each be covered by one).
HealthConfig parse_health(const JsonField& field, const std::vector<PortRuleConfig>& rules);

nlohmann::json health_json(const HealthConfig& health);

// An exec probe's or load metric's `command`: an argv array of 1..kMaxExecArgs strings, the
// first an absolute path (no shell, no PATH search). Throws ConfigError naming the element.
std::vector<std::string> parse_exec_command(const JsonField& command);

// The rules a probe guards, bit r = port_rules[r]: those covering one of its `ports` (on any
// VIP, either protocol), or every rule that is not `disabled` when it names none.
std::uint32_t guarded_rules(const ProbeConfig& probe, const std::vector<PortRuleConfig>& rules);

} // namespace nlb
