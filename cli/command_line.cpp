#include "command_line.hpp"

#include <sys/un.h>

#include <algorithm>
#include <optional>

#include "config.hpp"

namespace nlb::cli {

namespace {

// What a command takes after its name.
// local: nothing, and only from the host itself (never over remote control).
enum class Takes { nothing, local, interface, port, file, ip2mac, keygen };

struct CommandSpec {
    const char* name;
    Takes takes;
    const char* args;    // as in the usage line
    const char* summary; // one line of the general help
    const char* details; // the rest of `nlbadm COMMAND --help`
};

// clang-format off
constexpr CommandSpec kCommands[] = {
    {"attach", Takes::interface, "IFACE", "attach the dataplane to IFACE and join the cluster",
     "Attaches the XDP dataplane to IFACE, adds the VIPs and the cluster MAC, and joins the\n"
     "cluster in the configured initial_state. Attaching the interface already attached\n"
     "succeeds and changes nothing.\n"},
    {"detach", Takes::interface, "IFACE", "leave the cluster, remove everything attach added",
     "Leaves the cluster at once and removes the dataplane, the VIPs and the cluster MAC\n"
     "from IFACE.\n"},
    {"query", Takes::nothing, "", "this host's state and its view of the cluster (alias: status)",
     "Shows this host's state (stopped, converging, converged, draining, suspended,\n"
     "refused), the cluster's membership and default host, and per port rule the buckets\n"
     "this host owns. `status` is the same command.\n"},
    {"start", Takes::nothing, "", "join the cluster at once",
     "Joins the cluster: after convergence this host takes its share of every rule.\n"},
    {"stop", Takes::nothing, "", "leave the cluster at once (its connections are dropped)",
     "Leaves the cluster at once; connections this host serves are dropped. See drainstop\n"
     "for a graceful stop.\n"},
    {"drainstop", Takes::nothing, "", "take no new connections, finish existing ones, stop",
     "Takes no new connections, keeps serving the established ones, then stops.\n"},
    {"suspend", Takes::nothing, "", "stop and ignore every command but resume",
     "Stops like `stop` and ignores every command but `resume`.\n"},
    {"resume", Takes::nothing, "", "undo suspend (the host stays stopped)",
     "Undoes `suspend`; the host is stopped until `start`.\n"},
    {"reload", Takes::nothing, "", "re-read the agent's config file, apply what can change live",
     "Makes the agent re-read its configuration file (as SIGHUP and `systemctl reload\n"
     "nlb-agent` do) and apply live what is this host's own: each port rule's load_weight,\n"
     "handling_priority and enabled. The port rules' shape and the heartbeat timing are\n"
     "staged: the cluster switches to them once every host holds them (query shows the\n"
     "active and staged fingerprints). Answers the keys that changed and those staged. A\n"
     "change that needs a restart, or a file that does not parse, is refused with the\n"
     "reason (exit 1) and changes nothing at all.\n"},
    {"push", Takes::file, "FILE", "stage FILE's VIPs, port rules and timing on every host",
     "Sends the part of the configuration FILE (an nlb.json) that every host shares: its\n"
     "VIPs (beside the cluster IP), port rules and heartbeat timing. Each host keeps its own\n"
     "values of the rules it has (load_weight, handling_priority, enabled, load_feedback:\n"
     "from its rule with the same VIP, ports and protocol, else from one that overlaps; a\n"
     "new rule gets the defaults), stages the result as a reload would, and keeps it in its\n"
     "state directory (/var/lib/nlb/pushed.json), where it overrides nlb.json's VIPs, rules\n"
     "and timing from then on. The cluster switches once every host holds it. With\n"
     "--cluster it needs cluster.remote_config on each host; a host that refuses or does not\n"
     "answer is named. FILE's cluster.ip is not sent: each host keeps its own.\n"},
    {"diff", Takes::file, "FILE", "what a push of FILE would change on each host",
     "Shows, without changing anything, what `push FILE` would change on the host: the keys\n"
     "that would change live, those that would be staged, and the first that would need a\n"
     "restart (then the push would be refused).\n"},
    {"prepare-restart", Takes::local, "",
     "make the next stop a restart that keeps connections (local only)",
     "Makes the agent's next SIGTERM, within 60 s, a restart rather than a leave: the\n"
     "dataplane stays pinned, the cluster is not told, and the next agent adopts the\n"
     "tracked connections and this host's place, so no bucket moves and no connection is\n"
     "reset. The package's upgrade runs it before restarting the service; run it before\n"
     "`systemctl restart nlb-agent` for the same. The next agent must be back within the\n"
     "heartbeat tolerance, or the watchdog stops the dataplane and the others take over.\n"},
    {"enable", Takes::port, "PORT|all [--vip VIP]", "handle the port rule covering PORT",
     "Handles again, on this host, the port rule that covers PORT (every rule: all).\n"
     "--vip VIP picks the rule of that VIP rather than the rule for all VIPs (with all:\n"
     "every rule of that VIP, none of those for all VIPs).\n"},
    {"disable", Takes::port, "PORT|all [--vip VIP]", "stop handling that rule at once",
     "Stops handling, on this host, the port rule that covers PORT (every rule: all) at\n"
     "once; its connections on this host are dropped. --vip VIP as for enable.\n"},
    {"drain", Takes::port, "PORT|all [--vip VIP]", "stop new connections on that rule",
     "Stops taking new connections, on this host, for the port rule that covers PORT\n"
     "(every rule: all) and keeps serving the established ones. --vip VIP as for enable.\n"},
    {"params", Takes::nothing, "", "the agent's effective configuration",
     "Shows the configuration the agent runs with, every default filled in.\n"},
    {"map", Takes::nothing, "", "bucket ownership per port rule",
     "Shows, per port rule, how many buckets each host owns.\n"},
    {"stats", Takes::nothing, "", "dataplane and agent counters",
     "Shows the dataplane counters (accepted, dropped by reason, per rule) and the\n"
     "agent's heartbeat counters.\n"},
    {"ip2mac", Takes::ip2mac, "IP [--mode unicast|multicast|igmp]",
     "the cluster MAC of a cluster IP (no agent needed)",
     "Prints the cluster MAC that cluster IP IP gives in the mode (default unicast):\n"
     "unicast 02:bf:a:b:c:d, multicast 03:bf:a:b:c:d, igmp 01:00:5e:7f:c:d (and the IGMP\n"
     "group 239.255.c.d). Needs no agent.\n"},
    {"keygen", Takes::keygen, "[--out FILE]", "make a new random cluster key (no agent needed)",
     "Makes 32 random bytes from the kernel's random source, written as 64 hex digits: the\n"
     "content of cluster.key_file, the same on every host. --out FILE creates FILE with\n"
     "mode 0600 and writes the key there (refused if FILE exists); without it the key is\n"
     "printed. Needs no agent.\n"},
};
// clang-format on

const CommandSpec* find_command(std::string_view name) {
    if (name == "status")
        name = "query";
    for (const auto& c : kCommands)
        if (name == c.name)
            return &c;
    return nullptr;
}

std::string in_quotes(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// "--name=value" or "--name value"; advances i past a separate value.
std::string option_value(const std::vector<std::string>& args, std::size_t& i,
                         const std::string& name, const std::optional<std::string>& inline_value,
                         const std::string& context) {
    if (inline_value)
        return *inline_value;
    if (i + 1 >= args.size())
        throw UsageError(context + name + " needs a value");
    return args[++i];
}

std::uint16_t parse_port(const std::string& text, const std::string& command) {
    bool digits =
        !text.empty() && text.size() <= 5 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoul(text) > 65535)
        throw UsageError(command + ": bad port " + in_quotes(text) + " (0-65535 or all)");
    return static_cast<std::uint16_t>(std::stoul(text));
}

bool looks_negative_number(const std::string& arg) {
    return arg.size() > 1 && arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9';
}

// A decimal number of at most 5 digits within [min, max], or none.
std::optional<long> bounded_number(const std::string& text, long min, long max) {
    bool digits =
        !text.empty() && text.size() <= 5 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stol(text) < min || std::stol(text) > max)
        return std::nullopt;
    return std::stol(text);
}

// The remote-control options as given (each at most once).
struct RemoteArgs {
    std::optional<std::string> cluster, key_file, host, timeout;
    bool any() const { return cluster || key_file || host || timeout; }
};

RemoteOptions parse_remote(const RemoteArgs& given, const CommandSpec& spec, bool socket_given) {
    const std::string command = spec.name;
    if (!given.cluster)
        throw UsageError(std::string(given.key_file ? "--key-file"
                                     : given.host   ? "--host"
                                                    : "--timeout") +
                         " needs --cluster IP");
    if (spec.takes == Takes::ip2mac || spec.takes == Takes::keygen)
        throw UsageError(command + ": needs no agent, so no --cluster");
    if (spec.takes == Takes::interface || spec.takes == Takes::local)
        throw UsageError(command + ": local only (run nlbadm " + command +
                         " on the host, without --cluster)");
    if (socket_given)
        throw UsageError(
            "--socket and --cluster: the local agent or the cluster's hosts, not both");
    RemoteOptions remote;
    auto address = IpAddress::parse(*given.cluster);
    if (!address || address->family != NLB_FAMILY_V4)
        throw UsageError("--cluster: bad cluster IP " + in_quotes(*given.cluster) +
                         " (an IPv4 address)");
    remote.cluster = *address;
    if (!given.key_file)
        throw UsageError("--cluster needs --key-file FILE (the cluster key)");
    if (given.key_file->empty())
        throw UsageError("--key-file: empty path");
    remote.key_file = *given.key_file;
    if (given.host) {
        auto priority = bounded_number(*given.host, 1, NLB_MAX_HOSTS);
        if (!priority)
            throw UsageError("--host: bad priority " + in_quotes(*given.host) + " (1-" +
                             std::to_string(NLB_MAX_HOSTS) + ")");
        remote.host = static_cast<std::uint8_t>(*priority);
    }
    if (given.timeout) {
        auto ms =
            bounded_number(*given.timeout, kMinRemoteTimeout.count(), kMaxRemoteTimeout.count());
        if (!ms)
            throw UsageError("--timeout: bad value " + in_quotes(*given.timeout) + " (" +
                             std::to_string(kMinRemoteTimeout.count()) + "-" +
                             std::to_string(kMaxRemoteTimeout.count()) + " ms)");
        remote.timeout = std::chrono::milliseconds(*ms);
    }
    return remote;
}

} // namespace

Invocation parse_command_line(const std::vector<std::string>& args) {
    Invocation inv;
    const CommandSpec* spec = nullptr;
    bool help = false;
    bool version = false;
    std::vector<std::string> positional;
    std::optional<std::string> vip;
    std::optional<std::string> mode;
    std::optional<std::string> out;
    RemoteArgs remote;
    bool socket_given = false;

    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        std::string context = spec ? std::string(spec->name) + ": " : "";
        if (arg.size() > 1 && arg[0] == '-' && !looks_negative_number(arg)) {
            std::string name = arg;
            std::optional<std::string> inline_value;
            if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
                name = arg.substr(0, eq);
                inline_value = arg.substr(eq + 1);
            }
            auto remote_arg = name == "--cluster"    ? &remote.cluster
                              : name == "--key-file" ? &remote.key_file
                              : name == "--host"     ? &remote.host
                              : name == "--timeout"  ? &remote.timeout
                                                     : nullptr;
            bool takes_value = name == "--socket" || name == "--vip" || name == "--mode" ||
                               name == "--out" || remote_arg;
            if (inline_value && !takes_value)
                throw UsageError(context + name + " takes no value");
            if (name == "--help" || name == "-h") {
                help = true;
            } else if (name == "--version" || name == "-V") {
                version = true;
            } else if (name == "--json" || name == "-j") {
                inv.json = true;
            } else if (name == "--socket") {
                socket_given = true;
                inv.socket = option_value(args, i, name, inline_value, context);
                if (inv.socket.empty())
                    throw UsageError("--socket: empty path");
                if (inv.socket.size() >= sizeof(sockaddr_un::sun_path))
                    throw UsageError("--socket: path longer than " +
                                     std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
            } else if (name == "--vip" && spec && spec->takes == Takes::port) {
                if (vip)
                    throw UsageError(context + "--vip given twice");
                vip = option_value(args, i, name, inline_value, context);
            } else if (name == "--mode" && spec && spec->takes == Takes::ip2mac) {
                if (mode)
                    throw UsageError(context + "--mode given twice");
                mode = option_value(args, i, name, inline_value, context);
            } else if (name == "--out" && spec && spec->takes == Takes::keygen) {
                if (out)
                    throw UsageError(context + "--out given twice");
                out = option_value(args, i, name, inline_value, context);
                if (out->empty())
                    throw UsageError(context + "--out: empty path");
            } else if (remote_arg) {
                if (*remote_arg)
                    throw UsageError(name + " given twice");
                *remote_arg = option_value(args, i, name, inline_value, context);
            } else {
                throw UsageError(context + "unknown option " + in_quotes(name) + " (see nlbadm " +
                                 (spec ? std::string(spec->name) + " " : "") + "--help)");
            }
        } else if (!spec) {
            spec = find_command(arg);
            if (!spec)
                throw UsageError("unknown command " + in_quotes(arg) + " (see nlbadm --help)");
        } else {
            positional.push_back(arg);
        }
    }

    if (help) {
        inv.action = Action::help;
        inv.command = spec ? spec->name : "";
        return inv;
    }
    if (version) {
        inv.action = Action::version;
        return inv;
    }
    if (!spec)
        throw UsageError("no command given (see nlbadm --help)");
    inv.command = spec->name;
    std::string command = spec->name;
    if (remote.any())
        inv.remote = parse_remote(remote, *spec, socket_given);

    std::size_t wanted = spec->takes == Takes::nothing || spec->takes == Takes::local ||
                                 spec->takes == Takes::keygen
                             ? 0
                             : 1;
    if (positional.size() < wanted)
        throw UsageError(command + ": missing " +
                         std::string(spec->args).substr(0, std::string(spec->args).find(' ')) +
                         " (nlbadm " + command + " " + spec->args + ")");
    if (positional.size() > wanted)
        throw UsageError(command + ": unexpected argument " + in_quotes(positional[wanted]));

    inv.action = Action::agent;
    inv.request = {{"command", command}};
    switch (spec->takes) {
    case Takes::nothing:
    case Takes::local:
        break;
    case Takes::file:
        if (positional[0].empty())
            throw UsageError(command + ": empty file name");
        inv.file = positional[0]; // read by nlbadm: this parser does no I/O
        break;
    case Takes::interface:
        if (!is_valid_interface_name(positional[0]))
            throw UsageError(command + ": bad interface name " + in_quotes(positional[0]));
        inv.request["interface"] = positional[0];
        break;
    case Takes::port:
        if (positional[0] == "all")
            inv.request["port"] = "all";
        else
            inv.request["port"] = parse_port(positional[0], command);
        if (vip) {
            auto address = IpAddress::parse(*vip);
            if (!address)
                throw UsageError(command + ": bad address " + in_quotes(*vip) +
                                 " for --vip (an IPv4 or IPv6 address)");
            inv.request["vip"] = address->to_string();
        }
        break;
    case Takes::ip2mac: {
        auto address = IpAddress::parse(positional[0]);
        if (!address || address->family != NLB_FAMILY_V4)
            throw UsageError(command + ": bad cluster IP " + in_quotes(positional[0]) +
                             " (an IPv4 address)");
        inv.cluster_ip = *address;
        if (mode) {
            auto parsed = parse_cluster_mode(*mode);
            if (!parsed)
                throw UsageError(command + ": bad mode " + in_quotes(*mode) +
                                 " (unicast, multicast or igmp)");
            inv.mode = *parsed;
        }
        inv.action = Action::ip2mac;
        inv.request = nullptr;
        break;
    }
    case Takes::keygen:
        inv.action = Action::keygen;
        inv.request = nullptr;
        inv.out = out;
        break;
    }
    return inv;
}

std::string help_text(std::string_view topic) {
    if (!topic.empty()) {
        const CommandSpec* spec = find_command(topic);
        if (!spec)
            return help_text();
        std::string args = *spec->args ? std::string(" ") + spec->args : "";
        std::string usage = spec->takes == Takes::ip2mac || spec->takes == Takes::keygen
                                ? "Usage: nlbadm [--json] "
                                : "Usage: nlbadm [--socket PATH] [--json] ";
        std::string text = usage + spec->name + args + "\n";
        if (spec->takes == Takes::nothing || spec->takes == Takes::port ||
            spec->takes == Takes::file)
            text += "       nlbadm --cluster IP --key-file FILE [--host PRIORITY] [--timeout MS]\n"
                    "              [--json] " +
                    std::string(spec->name) + args + "\n";
        return text + "\n" + spec->details;
    }
    std::string text =
        "Usage: nlbadm [--socket PATH] [--json] COMMAND [ARGS]\n"
        "       nlbadm --cluster IP --key-file FILE [--host PRIORITY] [--timeout MS] [--json]\n"
        "              COMMAND [ARGS]\n"
        "       nlbadm COMMAND --help | --help | --version\n"
        "\n"
        "Controls the local nlb-agent over its Unix socket or, with --cluster, the agents of\n"
        "every host of a cluster over authenticated UDP (port 2504 of the cluster IP; the\n"
        "hosts need cluster.remote_control). attach, detach and prepare-restart are local\n"
        "only.\n"
        "\n"
        "Commands:\n";
    for (const auto& c : kCommands) {
        std::string left = std::string(c.name) + (*c.args ? std::string(" ") + c.args : "");
        if (left.size() > 30) {
            text += "  " + left + "\n" + std::string(34, ' ') + c.summary + "\n";
        } else {
            left.resize(32, ' ');
            text += "  " + left + c.summary + "\n";
        }
    }
    text += "\n"
            "Options:\n"
            "  --socket PATH   the agent's control socket (default " +
            std::string(kDefaultSocket) +
            ")\n"
            "  --json          print the result as one JSON document, for scripts\n"
            "  --help          this help; COMMAND --help: that command's help\n"
            "  --version       print nlbadm's version\n"
            "\n"
            "Remote control:\n"
            "  --cluster IP       send the command to every host of the cluster with this\n"
            "                     cluster IP; each answer is shown under its host\n"
            "  --key-file FILE    the cluster key (the hosts' cluster.key_file)\n"
            "  --host PRIORITY    only the host with this priority (1-64)\n"
            "  --timeout MS       how long to wait for the answers (default 1000, 100-30000)\n"
            "\n"
            "Exit codes:\n"
            "  0  success\n"
            "  1  the agent refused or failed the command (its error is printed)\n"
            "  2  usage error: unknown command, bad argument (bad port, bad address)\n"
            "  3  the agent is not reachable (not running, wrong --socket, permission\n"
            "     denied) or did not answer\n"
            "  With --cluster: 0 every host answered and none refused, 1 a host refused,\n"
            "  3 a host did not answer (or none did).\n";
    return text;
}

} // namespace nlb::cli
