// What nlbadm prints for a command sent with --cluster, and its exit code: per host a heading
// `host N (ADDRESS)` and the usual rendering of its result, or with --json one document
// {"hosts": {"1": result}, "errors": {"2": "..."}, "missing": [3]}; refusals and silent hosts
// on stderr. Pure functions of the answers, unit-tested.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "remote_client.hpp"

namespace nlb::cli {

// stdout without --json: every host that carried the command out, in priority order.
std::string remote_text(const std::string& command, const ClusterAnswers& answers);
// stdout with --json.
nlohmann::json remote_json(const ClusterAnswers& answers);
// stderr: one line per refusal, one for the hosts that did not answer (or none did).
std::string remote_errors(const ClusterAnswers& answers, const RemoteTarget& target);
// 3 when a host expected did not answer or none did, else 1 when a host refused, else 0.
int remote_exit_code(const ClusterAnswers& answers);

} // namespace nlb::cli
