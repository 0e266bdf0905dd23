// What a reload may change. The port rules' host-local parameters (load_weight,
// handling_priority, enabled) change live: the cluster reconverges as it does when a host's
// weights change. Everything else shapes the dataplane, the heartbeats or the cluster's
// agreement (the rule fingerprint), and changing it under a running cluster would be a restart
// in disguise, so a reload refuses it and names the key.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config.hpp"

namespace nlb {

struct ReloadPlan {
    std::vector<std::string> live;    // key paths that change and can: "port_rules[1].load_weight"
    std::optional<std::string> fixed; // the first key that changes and cannot: "cluster.mode"
};

ReloadPlan plan_reload(const Config& running, const Config& next);

} // namespace nlb
