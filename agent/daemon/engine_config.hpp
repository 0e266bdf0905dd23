// The convergence engine's view of the agent's configuration.
#pragma once

#include <string_view>

#include "config.hpp"
#include "convergence_engine.hpp"

namespace nlb {

// Reads the cluster key (cluster.key_file: 64 hex digits, as `nlbadm keygen` makes them) and
// the rotation key (cluster.rotation_key_file), and chooses the seed of the bucket hash:
// cluster.hash_seed, else one derived from the cluster key, else the fixed NLB_FLOW_SEED.
// Throws ConfigError naming the key and the problem.
EngineConfig engine_config_of(const Config& config);

// This host's parameters of each port rule (load weight, handling priority): the part of the
// engine's configuration a reload may change.
std::vector<HostRuleParams> host_rule_params(const Config& config);

// cluster.peers as the engine's second-path addresses (HostParams::peers): a reload may
// change them.
std::vector<ContactAddress> contact_peers(const Config& config);

// The key in a key file (remote::read_key_file's format: 32..64 bytes as hex, whitespace
// ignored, mode 0600 or narrower), or ConfigError naming `key` ("cluster.key_file: /etc/nlb/
// cluster.key is readable by group or others: chmod 600 /etc/nlb/cluster.key").
std::vector<std::uint8_t> read_key_file(const std::string& path,
                                        std::string_view key = "cluster.key_file");

} // namespace nlb
