#include "nlbadm.hpp"

#include <exception>

#include "command_line.hpp"
#include "control_client.hpp"
#include "local_commands.hpp"
#include "remote_client.hpp"
#include "remote_report.hpp"
#include "render.hpp"

#ifndef NLB_VERSION
#error "NLB_VERSION must be defined by the build (the CMake project version)"
#endif

namespace nlb::cli {

namespace {

// The agent's error, on one line whatever it sent.
std::string one_line(std::string text) {
    for (char& c : text)
        if (c == '\n' || c == '\r')
            c = ' ';
    return text;
}

void print(std::ostream& out, const Invocation& inv, const nlohmann::json& result,
           const std::string& human) {
    if (inv.json)
        out << result.dump(2) << "\n";
    else
        out << human;
}

// --cluster: the command to every host (or --host), each answer printed under its host.
int run_remote(const Invocation& inv, std::ostream& out, std::ostream& err) {
    const RemoteOptions& o = *inv.remote;
    RemoteTarget target;
    target.cluster = o.cluster;
    target.host = o.host;
    target.timeout = o.timeout;
    try {
        target.key = remote::read_key_file(o.key_file);
    } catch (const std::exception& e) {
        err << "nlbadm: --key-file: " << one_line(e.what()) << "\n";
        return kExitUsage;
    }
    ClusterAnswers answers = call_cluster(target, inv.request);
    if (inv.json)
        out << remote_json(answers).dump(2) << "\n";
    else
        out << remote_text(inv.command, answers);
    err << remote_errors(answers, target);
    return remote_exit_code(answers);
}

} // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Invocation inv;
    try {
        inv = parse_command_line(args);
    } catch (const UsageError& e) {
        err << "nlbadm: " << e.what() << "\n";
        return kExitUsage;
    }

    try {
        switch (inv.action) {
        case Action::help:
            out << help_text(inv.command);
            return kExitOk;
        case Action::version:
            out << "nlbadm " NLB_VERSION "\n";
            return kExitOk;
        case Action::ip2mac: {
            nlohmann::json result = ip2mac(inv.cluster_ip, inv.mode);
            print(out, inv, result, render_ip2mac(result));
            return kExitOk;
        }
        case Action::keygen: {
            std::string key = new_cluster_key();
            print(out, inv, {{"key", key}}, key + "\n");
            return kExitOk;
        }
        case Action::agent:
            break;
        }
        if (inv.remote)
            return run_remote(inv, out, err);

        nlohmann::json response = call_agent(inv.socket, inv.request);
        if (!response["ok"].get<bool>()) {
            const auto& error = response.contains("error") ? response["error"] : nullptr;
            err << "nlbadm: "
                << (error.is_string() ? one_line(error.get<std::string>())
                                      : inv.command + ": refused by nlb-agent (no reason given)")
                << "\n";
            return kExitRefused;
        }
        nlohmann::json result = response.contains("result") ? response["result"] : nullptr;
        print(out, inv, result, render(inv.command, result));
        return kExitOk;
    } catch (const AgentUnreachable& e) {
        err << "nlbadm: " << e.what() << "\n";
        return kExitUnreachable;
    } catch (const RemoteUnreachable& e) {
        err << "nlbadm: " << e.what() << "\n";
        return kExitUnreachable;
    } catch (const std::exception& e) {
        // A malformed answer, or a local command that failed (getrandom).
        err << "nlbadm: " << inv.command << ": " << one_line(e.what()) << "\n";
        return kExitRefused;
    }
}

} // namespace nlb::cli
