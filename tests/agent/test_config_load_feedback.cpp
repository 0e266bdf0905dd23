// A port rule's "load_feedback": parses strictly (errors name the key), prints back to the same
// config, belongs to `multiple` rules only, and a reload refuses to change it.
#include <catch2/catch.hpp>

#include <string>

#include "config.hpp"
#include "config_reload.hpp"

using namespace nlb;

namespace {

std::string with_feedback(const std::string& feedback, const std::string& mode = "multiple") {
    return R"({"cluster": {"ip": "10.0.0.1"}, "host": {"priority": 1, "dedicated_ip": "10.0.0.11"},
      "port_rules": [{"ports": [80, 80], "mode": ")" +
           mode + R"(", "load_feedback": )" + feedback + "}]}";
}

std::string feedback_error(const std::string& feedback, const std::string& mode = "multiple") {
    try {
        parse_config(with_feedback(feedback, mode), "nlb.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST_CASE("load_feedback: the issue's example, defaults, exec, and back to the same config") {
    const Config c = parse_config(with_feedback(
        R"({"metric": "connections", "interval_ms": 2000, "sensitivity": 0.1, "min_weight": 10})"));
    REQUIRE(c.port_rules[0].load_feedback);
    const LoadFeedbackConfig& f = *c.port_rules[0].load_feedback;
    CHECK(f.metric == LoadMetric::connections);
    CHECK(f.interval_ms == 2000);
    CHECK(f.sensitivity == 0.1);
    CHECK(f.min_weight == 10);
    CHECK(parse_config(to_json(c).dump()) == c);

    const Config d = parse_config(with_feedback(R"({"metric": "cpu"})"));
    CHECK(d.port_rules[0].load_feedback->interval_ms == 2000);
    CHECK(d.port_rules[0].load_feedback->min_weight == 10);

    const Config e = parse_config(with_feedback(
        R"({"metric": "exec", "command": ["/usr/bin/load", "-n"], "user": "www-data",
            "interval_ms": 800})"));
    const LoadFeedbackConfig& x = *e.port_rules[0].load_feedback;
    CHECK(x.command == std::vector<std::string>{"/usr/bin/load", "-n"});
    CHECK(x.user == "www-data");
    CHECK(x.timeout_ms == 800); // at most the interval
    CHECK(parse_config(to_json(e).dump()) == e);
}

TEST_CASE("load_feedback: every mistake is one line naming its key") {
    CHECK(feedback_error(R"({"metric": "ram"})") ==
          "port_rules[0].load_feedback.metric: \"ram\" is not connections, cpu, "
          "probe_latency or exec");
    CHECK(feedback_error(R"({})") == "port_rules[0].load_feedback.metric: required key missing");
    CHECK(feedback_error(R"({"metric": "cpu", "sensitivity": 1.5})") ==
          "port_rules[0].load_feedback.sensitivity: 1.5 above the maximum 1");
    CHECK(feedback_error(R"({"metric": "cpu", "sensitivity": "low"})") ==
          "port_rules[0].load_feedback.sensitivity: expected a number, got a string");
    CHECK(feedback_error(R"({"metric": "cpu", "interval_ms": 100})") ==
          "port_rules[0].load_feedback.interval_ms: 100 below the minimum 500");
    CHECK(feedback_error(R"({"metric": "cpu", "command": ["/bin/true"]})") ==
          "port_rules[0].load_feedback.command: only for metric exec, this one is cpu");
    CHECK(feedback_error(R"({"metric": "exec"})") ==
          "port_rules[0].load_feedback: metric exec needs \"command\" (an argv array, "
          "no shell)");
    CHECK(feedback_error(R"({"metric": "exec", "command": ["load"]})") ==
          "port_rules[0].load_feedback.command[0]: \"load\" is not an absolute path "
          "(no shell, no PATH search)");
    CHECK(feedback_error(R"({"metric": "cpu", "colour": 1})") ==
          "port_rules[0].load_feedback.colour: unknown key");
    CHECK(feedback_error(R"({"metric": "cpu"})", "single") ==
          "port_rules[0].load_feedback: only for mode multiple, this rule is single");
}

TEST_CASE("load_feedback: probe_latency needs a probe guarding the rule") {
    CHECK(feedback_error(R"({"metric": "probe_latency"})") ==
          "port_rules[0].load_feedback.metric: probe_latency needs a health probe guarding "
          "this rule");
    const std::string guarded =
        R"({"cluster": {"ip": "10.0.0.1"}, "host": {"priority": 1, "dedicated_ip": "10.0.0.11"},
        "port_rules": [{"ports": [80, 80], "load_feedback": {"metric": "probe_latency"}}],
        "health": {"probes": [{"name": "web", "type": "tcp", "port": 80, "ports": [80]}]}})";
    CHECK(parse_config(guarded).port_rules[0].load_feedback->metric == LoadMetric::probe_latency);
}

TEST_CASE("load_feedback: a reload refuses a change of it") {
    const Config a = parse_config(with_feedback(R"({"metric": "connections"})"));
    const Config b = parse_config(with_feedback(R"({"metric": "cpu"})"));
    const ReloadPlan plan = plan_reload(a, b);
    REQUIRE(plan.fixed);
    CHECK(*plan.fixed == "port_rules[0].load_feedback");
    CHECK_FALSE(plan_reload(a, a).fixed);
}
