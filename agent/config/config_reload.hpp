// What a reload may change, and how. The port rules' host-local parameters (load_weight,
// handling_priority, enabled) change live: the cluster reconverges as it does when a host's
// weights change. What every host must share and the cluster can switch as one (the port
// rules themselves, the heartbeat timing, cleanup_delay_s) is staged: loaded beside the
// running set and switched to once every host holds it (docs/staged-config.md). Everything
// else shapes the dataplane, the heartbeats or the host's identity, and changing it under a
// running cluster would be a restart in disguise, so a reload refuses it and names the key.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config.hpp"

namespace nlb {

struct ReloadPlan {
    std::vector<std::string> live; // key paths that change here alone: "port_rules[1].load_weight"
    std::vector<std::string>
        staged; // key paths the cluster switches together: "cluster.heartbeat_ms"
    std::optional<std::string> fixed; // the first key that changes and cannot: "cluster.mode"
};

ReloadPlan plan_reload(const Config& running, const Config& next);

// `nlbadm diff`'s answer for `plan` (the running configuration against what a push would
// apply) on a host that holds a staged set beside the running one, or not (`holds_staged`):
// {"live", "staged", "restart", "unstages", "same"}. A push that stages nothing removes what
// is staged, as a reload does (the others may be waiting for it): that is no "same".
nlohmann::json diff_answer(const ReloadPlan& plan, bool holds_staged);

} // namespace nlb
