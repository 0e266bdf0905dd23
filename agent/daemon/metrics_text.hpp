// The agent's counters in Prometheus text exposition format 0.0.4 (docs/metrics.md): a pure
// function of the JSON that `nlbadm stats --json` shows, so that the page and the CLI can
// never disagree on what a counter is.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace nlb {

// The /metrics page for Agent::stats()'s JSON. Keys it does not know are ignored, missing
// ones read as zero, so every metric family is always present with its HELP and TYPE lines.
std::string metrics_text(const nlohmann::json& stats);

// A label value as the exposition format quotes it: \ " and newline escaped.
std::string escape_label_value(std::string_view value);

// The content type of metrics_text's output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

} // namespace nlb
