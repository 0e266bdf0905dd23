// Human-readable output of agent results: aligned key/value sections and tables, in the
// spirit of `xdp-loader status`. Pure functions of the result JSON, unit-tested. With --json
// nlbadm prints the result itself instead.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nlb::cli {

// The output of `command` (canonical name) for the agent's `result`. Ends with a newline.
std::string render(const std::string& command, const nlohmann::json& result);

// query / status: host, cluster, and the rules with the buckets this host owns.
std::string render_query(const nlohmann::json& result);
// map: per rule, the buckets each owner holds. Accepts per rule an {"owner": count} object
// ("buckets_per_owner" or "owners") or "owners" as the bucket→owner array (0: no owner).
std::string render_map(const nlohmann::json& result);
// params, stats and anything else: objects as indented key/value sections, arrays of objects
// as tables, known keys first in a fixed order, the rest alphabetically.
std::string render_generic(const nlohmann::json& result);

// `text` (an error from the agent, a host or a library) with its line breaks as spaces: an
// error is one line whatever its source sent.
std::string one_line(std::string text);

// Left-aligned columns, two spaces apart, each line prefixed by `indent` spaces.
std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows, int indent = 0);

} // namespace nlb::cli
