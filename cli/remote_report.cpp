#include "remote_report.hpp"

#include "command_line.hpp"
#include "render.hpp"

namespace nlb::cli {

namespace {

std::string heading(int priority, const HostAnswer& a) {
    std::string h = "host " + std::to_string(priority);
    return a.address.empty() ? h : h + " (" + a.address + ")";
}

std::string indented(const std::string& text) {
    std::string out;
    bool line_start = true;
    for (char c : text) {
        if (line_start && c != '\n')
            out += "  ";
        out += c;
        line_start = c == '\n';
    }
    return out;
}

std::string host_list(const std::set<int>& hosts) {
    std::string out = hosts.size() == 1 ? "host " : "hosts ";
    bool first = true;
    for (int p : hosts) {
        out += (first ? "" : ", ") + std::to_string(p);
        first = false;
    }
    return out;
}

} // namespace

std::string remote_text(const std::string& command, const ClusterAnswers& answers) {
    std::string out;
    for (const auto& [priority, a] : answers.hosts) {
        if (!a.ok)
            continue;
        if (!out.empty())
            out += "\n";
        out += heading(priority, a) + "\n" + indented(render(command, a.result));
    }
    return out;
}

nlohmann::json remote_json(const ClusterAnswers& answers) {
    nlohmann::json hosts = nlohmann::json::object(), errors = nlohmann::json::object();
    for (const auto& [priority, a] : answers.hosts) {
        if (a.ok)
            hosts[std::to_string(priority)] = a.result;
        else
            errors[std::to_string(priority)] = a.error;
    }
    return {{"hosts", hosts}, {"errors", errors}, {"missing", answers.missing}};
}

std::string remote_errors(const ClusterAnswers& answers, const RemoteTarget& target) {
    std::string out;
    for (const auto& [priority, a] : answers.hosts)
        if (!a.ok)
            out += "nlbadm: " + heading(priority, a) + ": " + one_line(a.error) + "\n";
    const std::string within = " within " + std::to_string(target.timeout.count()) + " ms";
    if (answers.hosts.empty()) {
        std::string who = target.host
                              ? "host " + std::to_string(target.host) + " of cluster " +
                                    target.cluster.to_string() + " did not answer"
                              : "no host of cluster " + target.cluster.to_string() + " answered";
        out += "nlbadm: " + who + within +
               " (is cluster.remote_control on, the key the cluster's, UDP " +
               std::to_string(target.port) + " reachable?)\n";
    } else if (!answers.missing.empty()) {
        out += "nlbadm: no answer from " + host_list(answers.missing) + within + "\n";
    }
    return out;
}

int remote_exit_code(const ClusterAnswers& answers) {
    if (answers.hosts.empty() || !answers.missing.empty())
        return kExitUnreachable;
    for (const auto& [priority, a] : answers.hosts)
        if (!a.ok)
            return kExitRefused;
    return kExitOk;
}

} // namespace nlb::cli
