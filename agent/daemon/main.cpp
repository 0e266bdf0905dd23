// nlb-agent: one per host. Reads the config, attaches (or adopts a pinned dataplane), joins
// the cluster and serves the control socket until SIGTERM.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>

#include <bpf/libbpf.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "agent.hpp"
#include "allocation.hpp"
#include "config.hpp"
#include "engine_config.hpp"
#include "event_log.hpp"
#include "health_monitor.hpp"
#include "release_dataplane.hpp"

namespace {

const char* const kUsage =
    R"(usage: nlb-agent [--config FILE] [--socket PATH] [--pin-dir DIR] [--state-dir DIR]
                 [--log-format text|json] [--xdp-mode auto|native|generic] [--keep-dataplane]
       nlb-agent --release-dataplane [--socket PATH] [--pin-dir DIR]
       nlb-agent --version | --help

Network Load Balancing agent: runs in the foreground, logs events to stderr. Under systemd
(Type=notify) it reports ready once the configuration is loaded and host.interface, if set, is
attached. SIGHUP re-reads the configuration, applies the port rules' load_weight,
handling_priority and enabled and stages their shape and the heartbeat timing (the cluster
switches once every host holds them); other changes are refused with a log line (restart).

  --config FILE        configuration (default /etc/nlb/nlb.json)
  --socket PATH        control socket for nlbadm (default /run/nlb/nlb.sock)
  --pin-dir DIR        where the dataplane is pinned, on a BPF filesystem
                       (default /sys/fs/bpf/nlb)
  --state-dir DIR      where a pushed configuration is kept, pushed.json (default
                       /var/lib/nlb): it overrides the config file's port rules and timing
  --log-format FORMAT  text (default) or json, one event per line
  --xdp-mode MODE      auto (default: native; generic on a veth, where only generic hands
                       accepted frames to the stack, or where the driver has none), native
                       or generic
  --keep-dataplane     on SIGTERM leave the cluster but keep the dataplane pinned, so that a
                       restarted agent adopts it with its tracked connections (the watchdog
                       stops it if no agent comes back)
  --release-dataplane  take down a dataplane an agent left pinned (killed, or stopped with
                       --keep-dataplane) without joining the cluster, as detach would:
                       VIPs, cluster MAC filter, arp_announce, programs and pins; refused
                       while an agent answers on the socket. The package's removal runs it

Exit status: 0 after SIGTERM/SIGINT, 1 when the agent cannot run (privileges, interface,
BPF), 2 for a bad command line or configuration.
)";

int usage_error(const std::string& message) {
    std::fprintf(stderr, "nlb-agent: %s (see nlb-agent --help)\n", message.c_str());
    return 2;
}

bool running_as_root() {
    if (geteuid() == 0)
        return true;
    std::fprintf(stderr, "nlb-agent: must run as root (it loads XDP programs and changes "
                         "interfaces)\n");
    return false;
}

// No configuration: what to take down is read from the pins.
int release_dataplane(const nlb::AgentOptions& options) {
    if (!running_as_root())
        return 1;
    libbpf_set_print(nullptr);
    try {
        if (auto ifname = nlb::release_pinned_dataplane(options.pin_dir, options.socket_path))
            std::printf("nlb-agent: released the dataplane pinned in %s (on %s)\n",
                        options.pin_dir.c_str(), ifname->c_str());
        else
            std::printf("nlb-agent: no dataplane pinned in %s\n", options.pin_dir.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nlb-agent: %s\n", e.what());
        return 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path = "/etc/nlb/nlb.json";
    nlb::AgentOptions options;
    nlb::LogFormat format = nlb::LogFormat::text;
    bool release = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (arg == "--version") {
            std::printf("nlb-agent %s\n", NLB_VERSION);
            return 0;
        }
        if (arg == "--keep-dataplane") {
            options.keep_dataplane = true;
            continue;
        }
        if (arg == "--release-dataplane") {
            release = true;
            continue;
        }
        const char* v = nullptr;
        if (arg != "--config" && arg != "--socket" && arg != "--pin-dir" && arg != "--log-format" &&
            arg != "--xdp-mode" && arg != "--state-dir")
            return usage_error("unknown option " + arg);
        if (!(v = value()))
            return usage_error(arg + " needs a value");
        if (arg == "--config")
            config_path = v;
        else if (arg == "--socket")
            options.socket_path = v;
        else if (arg == "--pin-dir")
            options.pin_dir = v;
        else if (arg == "--state-dir")
            options.state_dir = v;
        else if (arg == "--xdp-mode") {
            std::string m = v;
            if (m == "auto")
                options.xdp_mode = nlb::XdpMode::automatic;
            else if (m == "native")
                options.xdp_mode = nlb::XdpMode::native;
            else if (m == "generic")
                options.xdp_mode = nlb::XdpMode::generic;
            else
                return usage_error("--xdp-mode: " + m + " (auto, native or generic)");
        } else if (std::string(v) == "text")
            format = nlb::LogFormat::text;
        else if (std::string(v) == "json")
            format = nlb::LogFormat::json;
        else
            return usage_error("--log-format: " + std::string(v) + " (text or json)");
    }

    if (release)
        return release_dataplane(options);

    options.config_path = config_path;
    nlb::Config config;
    try {
        config = nlb::Agent::effective_config(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nlb-agent: %s\n", e.what());
        return 2;
    }
    try {
        // Probes' users are looked up now: a missing one is a configuration error.
        nlb::HealthMonitor::resolve_all(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nlb-agent: %s\n", e.what());
        return 2;
    }
    if (!running_as_root())
        return 1;
    try {
        // The key files are configuration too (a missing one, one group or others may read):
        // read now, before anything on the host changes, rather than by the attach, which
        // found them only once the XDP program was on the interface (and exited 1).
        (void)nlb::engine_config_of(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nlb-agent: %s\n", e.what());
        return 2;
    }

    // The allocation's shared table (13-15 ms of CPU, more on a busy machine) is built beside
    // the dataplane's load on the other core, not after it on the way to the first heartbeat:
    // a restarted agent has (tolerance - 1) periods before the others take its buckets. The
    // engine waits for it if it is not done (or builds it itself, without a thread).
    std::jthread table;
    try {
        table = std::jthread(nlb::prepare_allocation);
    } catch (const std::system_error&) {
    }

    // A closed log sink (a pipe's reader that exited) drops lines (EventLog), and must not
    // kill the agent, whose dataplane would then serve on until its watchdog stops it.
    std::signal(SIGPIPE, SIG_IGN);
    nlb::EventLog log(format);
    // Every libbpf failure reaches us as an error code and is reported with its context; its
    // own messages (some for conditions we expect, such as an existing clsact qdisc) would
    // only be noise.
    libbpf_set_print(nullptr);
    try {
        std::filesystem::path dir = std::filesystem::path(options.socket_path).parent_path();
        if (!dir.empty())
            std::filesystem::create_directories(dir);
        boost::asio::io_context io;
        nlb::Agent agent(io, std::move(config), options, log);
        agent.start();
        boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
        std::function<void(const boost::system::error_code&, int)> on_signal =
            [&](const boost::system::error_code& ec, int sig) {
                if (ec)
                    return;
                if (sig == SIGHUP) {
                    // systemd (Type=notify) holds `systemctl reload` until READY=1 again.
                    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                               static_cast<unsigned long long>(nlb::monotonic_now().count()) *
                                   1000ULL);
                    const bool applied = agent.reload().applied;
                    // what the reload did, before READY; briefly: this is the loop
                    log.flush(std::chrono::milliseconds(50));
                    sd_notifyf(0, "READY=1\nSTATUS=%s",
                               applied ? "running; configuration reloaded"
                                       : "running; reload refused, see log");
                    signals.async_wait(on_signal);
                    return;
                }
                sd_notify(0, "STOPPING=1");
                log.event("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
                sd_notify(0, agent.shutdown() ? "STATUS=restarting: dataplane kept"
                                              : "STATUS=left the cluster");
                io.stop();
            };
        signals.async_wait(on_signal);
        log.event("started", {{"config", config_path},
                              {"socket", options.socket_path},
                              {"pin_dir", options.pin_dir}});
        // Ready: the configuration is loaded and, when host.interface is set, attached (start()
        // throws otherwise). A no-op outside systemd (NOTIFY_SOCKET unset).
        log.flush(std::chrono::seconds(1)); // `attached` and `started`, before READY
        sd_notify(0, "READY=1\nSTATUS=running");
        io.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nlb-agent: %s\n", e.what());
        return 1;
    }
    return 0;
}
