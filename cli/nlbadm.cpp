#include "nlbadm.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "command_line.hpp"
#include "control_client.hpp"
#include "fd.hpp"
#include "local_commands.hpp"
#include "remote_client.hpp"
#include "shared_config.hpp"
#include "remote_report.hpp"
#include "render.hpp"

#ifndef NLB_VERSION
#error "NLB_VERSION must be defined by the build (the CMake project version)"
#endif

namespace nlb::cli {

namespace {

void print(std::ostream& out, const Invocation& inv, const nlohmann::json& result,
           const std::string& human) {
    if (inv.json)
        out << result.dump(2) << "\n";
    else
        out << human;
}

// keygen --out FILE: the key goes into a file that exists only with mode 0600. O_EXCL: an
// existing file (perhaps the cluster's key, or a symlink planted elsewhere) is never
// overwritten or followed; the mode is given at creation, so the key is never readable by
// others, not even between a create and a chmod (the umask can only narrow it further).
void write_key_file(const std::string& path, const std::string& key) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        throw std::runtime_error(
            "--out " + path + ": " + std::strerror(errno) +
            (errno == EEXIST ? " (nlbadm keygen never overwrites a key)" : ""));
    Fd closer(fd);
    const std::string text = key + "\n";
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        done += static_cast<std::size_t>(n);
    }
    // On disk before we say so: the file is about to be copied to every host.
    if (done < text.size() || ::fsync(fd) != 0) {
        const int error = errno;
        ::unlink(path.c_str()); // a half-written key is no key
        throw std::runtime_error("--out " + path + ": " + std::strerror(error));
    }
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
            if (inv.out) {
                write_key_file(*inv.out, key);
                // Only where it went: the key itself stays out of terminals and logs.
                if (inv.json)
                    out << nlohmann::json{{"file", *inv.out}}.dump(2) << "\n";
                return kExitOk;
            }
            print(out, inv, {{"key", key}}, key + "\n");
            return kExitOk;
        }
        case Action::agent:
            break;
        }
        if (inv.file) {
            // The shared part of an nlb.json, checked as the agent checks its own file.
            try {
                const nlohmann::json part = shared_part(load_config(*inv.file));
                for (const auto& [key, value] : part.items())
                    inv.request[key] = value;
            } catch (const std::exception& e) {
                err << "nlbadm: " << inv.command << ": " << one_line(e.what()) << "\n";
                return kExitUsage;
            }
            if (inv.remote && inv.request.dump().size() + remote::kHeaderSize + remote::kMacSize >
                                  remote::kMaxRequestSize) {
                err << "nlbadm: " << inv.command << ": " << *inv.file
                    << ": its port rules do not fit one remote-control request ("
                    << remote::kMaxRequestSize << " bytes)\n";
                return kExitUsage;
            }
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
