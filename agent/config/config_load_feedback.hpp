// Parsing and printing of a port rule's `"load_feedback"` (LoadFeedbackConfig, config.hpp);
// used by parse_config / to_json.
#pragma once

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "json_reader.hpp"

namespace nlb {

// Throws ConfigError naming the key ("port_rules[0].load_feedback.metric: ...").
LoadFeedbackConfig parse_load_feedback(const JsonField& field);

nlohmann::json load_feedback_json(const LoadFeedbackConfig& feedback);

} // namespace nlb
