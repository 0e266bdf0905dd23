// The port rules an `enable` / `disable` / `drain` request names (docs/control.md).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataplane_tables.hpp"

namespace nlb {

// `port` "all": every rule (-1), or with `vip` every rule of that VIP; a port number: the rule
// that covers it on `vip` (or on the cluster IP), or the two when a tcp and a udp rule do. Throws
// std::invalid_argument with the one-line error ("disable: no port rule covers port 81").
std::vector<int> rule_targets(const DataplaneTables& tables, const nlohmann::json& request,
                              const std::string& verb);

} // namespace nlb
