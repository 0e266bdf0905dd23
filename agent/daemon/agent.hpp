// nlb-agent's core: owns the dataplane, the host-side interface setup, the heartbeat socket,
// the convergence engine and the control socket, and moves events between them on one
// io_context. Every decision is the engine's; this class only carries it out.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "config.hpp"
#include "connection_tracking.hpp"
#include "contact_socket.hpp"
#include "control_server.hpp"
#include "convergence_engine.hpp"
#include "dataplane_loader.hpp"
#include "dataplane_tables.hpp"
#include "event_log.hpp"
#include "health_monitor.hpp"
#include "heartbeat_socket.hpp"
#include "host_interface.hpp"
#include "igmp_querier.hpp"
#include "link_info.hpp"
#include "load_feedback.hpp"
#include "metrics_server.hpp"
#include "receive_probe.hpp"
#include "receive_watch.hpp"
#include "remote_server.hpp"
#include "start_wait_file.hpp"
#include "thread_schedstat.hpp"

namespace nlb {

struct AgentOptions {
    std::string socket_path = "/run/nlb/nlb.sock";
    std::string pin_dir = "/sys/fs/bpf/nlb";
    std::string config_path; // what a reload re-reads (SIGHUP, `nlbadm reload`)
    // Where a pushed shared configuration is kept (pushed.json): it overrides the config
    // file's port rules and timing at every start and reload (docs/staged-config.md).
    std::string state_dir = "/var/lib/nlb";
    // On SIGTERM leave the dataplane pinned (the watchdog stops it unless a new agent adopts
    // it in time) instead of detaching: for restarts that keep tracked connections.
    bool keep_dataplane = false;
    XdpMode xdp_mode = XdpMode::automatic;
};

class Agent {
  public:
    // Throws std::runtime_error on anything that keeps the agent from running; nothing on
    // the host is left changed then.
    Agent(boost::asio::io_context& io, Config config, AgentOptions options, EventLog& log);
    ~Agent();

    // Control socket up; adopts a pinned dataplane or attaches host.interface if set.
    void start();
    // SIGTERM: tell the cluster this host leaves, then detach (or keep, see AgentOptions).
    // After `nlbadm prepare-restart` (within kRestartWindow) it is a restart instead: the
    // dataplane stays pinned and the cluster is not told, so the next agent adopts both the
    // tracked connections and this host's place, as after a crash. True then.
    bool shutdown();
    // How long `prepare-restart` holds: long enough for a package upgrade to reach the
    // restart, short enough that a later, unrelated stop still leaves the cluster.
    static constexpr std::chrono::seconds kRestartWindow{60};
    // SIGHUP, `nlbadm reload`: re-read the config file; apply the port rules' load_weight,
    // handling_priority and enabled live, stage the shared rules and timing (applied when the
    // cluster switches, docs/staged-config.md), or log why not and change nothing
    // (config_reload.hpp). The keys applied and staged, or the one-line reason nothing was.
    struct ReloadResult {
        bool applied = false;
        std::vector<std::string> changed;
        std::vector<std::string> staged;
        std::string error;
    };
    ReloadResult reload();

    // The config file with the pushed shared part (options.state_dir/pushed.json) over it,
    // when there is one. Throws ConfigError naming the file that does not do.
    static Config effective_config(const AgentOptions& options);

  private:
    nlohmann::json handle(const nlohmann::json& request);
    // handle(), then the lines it logged written (briefly: the log's sink may be stuck) before
    // the reply goes out: an operator whose command returned finds its lines in the log.
    nlohmann::json answer(const nlohmann::json& request);
    // A configuration to run (a reload's, a push's): host-local values live, the shared
    // ones staged, or refused (`what`: "reload", "push") with nothing changed.
    ReloadResult apply_config(Config next, const std::string& what);
    // `nlbadm push` and `diff`: a shared part, from the cluster (request["remote_from"]) or
    // from the control socket.
    nlohmann::json push(const nlohmann::json& request, bool apply);
    nlohmann::json attach(const std::string& ifname);
    nlohmann::json detach();
    // The attached interface, or the cluster's VLAN interface on it, deleted and created
    // again under its name since the attach (its index changed): attached afresh.
    bool interface_replaced() const;
    void reattach();
    // Until an attach succeeds again (every second), or an operator attaches or detaches.
    void retry_reattach();
    nlohmann::json remote_control_stats() const;
    // What a host brought up again after its interface was made anew resumes: its state and
    // its rules' enable / disable / drain, where a fresh attach takes the configuration's.
    struct Resume {
        HostState state = HostState::converged;
        std::vector<RuleControl> rules;
    };
    void bring_up(std::unique_ptr<Dataplane> dp, const Resume* resume = nullptr);
    void resume_controls(const Resume& resume, std::chrono::milliseconds now);
    // `leave`: tell the cluster (a stop); false for a restart, which says nothing.
    void tear_down(bool keep_dataplane, bool leave = true);
    void disable_rules_off_here(std::chrono::milliseconds now);
    // The rule slots' mode and affinity as tables_ has them (the ownership bytes stay).
    void write_rule_modes(DataplaneMaps& maps) const;
    // The engine switched to the staged configuration: it becomes config_, the dataplane's
    // port table and rule modes are rewritten, probes and load feedback follow the new rules.
    void switch_config(std::chrono::milliseconds now);
    void on_probe_verdict(std::size_t probe, bool up, const CheckResult& result);

    void schedule(std::chrono::milliseconds at);
    void tick(std::chrono::milliseconds due); // the timer set for `due`
    void periodic(std::chrono::milliseconds now);
    // `arrival`: when the frame came (the kernel's timestamp); `source`: the Ethernet source
    // of a segment frame (null on the contact path). The frames a reader's turn brings are
    // decided on together when it ends: heartbeats_read.
    void heartbeat(std::span<const std::uint8_t> frame, Path path,
                   std::chrono::steady_clock::time_point arrival,
                   const MacAddress* source = nullptr);
    void heartbeats_read();
    // The segment socket's linger (BatchReader) for the period config_ has.
    std::chrono::milliseconds heartbeat_linger() const;
    void set_heartbeat_linger();
    void arm_watchdog(std::chrono::milliseconds now);
    // After every input the loop hands the engine: refreshes the watchdog when its deadline
    // trails the engine's latest look by a step or more, or the timer's refresh is due.
    void keep_watchdog(std::chrono::milliseconds now);
    void watch_link(std::chrono::milliseconds now);
    void restore_interface(std::chrono::milliseconds now);
    void watch_claims(std::chrono::milliseconds now);
    void watch_mtu();
    bool receiving(std::chrono::milliseconds now);
    std::uint64_t client_frames() const; // every frame to a VIP the dataplane counted
    std::chrono::milliseconds watchdog_timeout() const; // (tolerance - 1) periods
    void apply(Decision decision);
    void install(const SlotViews& views);
    // A scan the engine may release buckets on (ConnectionTracking::scan), on the loop.
    // True when the scan changed the buckets the engine reports holding.
    bool scan_connections_now(std::chrono::milliseconds now);
    // This host's per-rule parameters as the engine gets them: the config's, with the
    // effective weights of the rules under load feedback.
    std::vector<HostRuleParams> host_rules() const;
    // `next` with every bucket this host gives up still looked up in its connection tables.
    SlotViews with_released_tracked(const SlotViews& next) const;
    void add_stall_cause(nlohmann::json& fields) const;
    // Of every rule's counters, in one read of each: packets accepted, packets of any verdict
    // (accepted or dropped, for whatever reason), and connections the host's stack
    // established that the dataplane recorded.
    struct RuleTotals {
        std::uint64_t accepted = 0;
        std::uint64_t seen = 0;
        std::uint64_t established = 0;
    };
    RuleTotals rule_totals() const;
    std::uint64_t accepted_total() const { return rule_totals().accepted; }
    nlohmann::json command(CommandKind kind, int rule = -1);
    nlohmann::json rule_command(const nlohmann::json& request, CommandKind kind);

    nlohmann::json query() const;
    bool is_member() const; // not stopped or suspended (query, stats)
    nlohmann::json map() const;
    nlohmann::json stats() const;

    boost::asio::io_context& io_;
    Config config_;
    // The configuration file's, staged in the engine until the cluster switches to it.
    std::optional<Config> staged_;
    AgentOptions options_;
    EventLog& log_;
    // Rebuilt at each attach under the seed the key file then gives (before: the fixed seed;
    // only the VIP and rule lookups, which no seed changes, are used then).
    DataplaneTables tables_;

    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<MetricsServer> metrics_; // config metrics set: serves metrics_text(stats())
    std::unique_ptr<Dataplane> dp_;
    std::unique_ptr<HostInterface> iface_;
    int cluster_ifindex_ = 0; // of iface_'s interface, at the attach
    LinkProbe link_probe_;
    std::unique_ptr<HeartbeatSocket> hb_;
    std::unique_ptr<ContactSocket> contact_; // null: no second path (bind failed; logged)
    std::string contact_error_;
    std::unique_ptr<IgmpQuerier> querier_; // cluster.igmp_querier; null: off, or failed (logged)
    std::unique_ptr<ConvergenceEngine> engine_;
    StartWaitFile start_wait_; // the cluster's longest tolerance, for the next start
    // Runs from start() whether attached or not, so that an attach finds verdicts ready.
    std::unique_ptr<HealthMonitor> health_;
    std::unique_ptr<LoadFeedback> load_; // port rules with load_feedback; null: none
    boost::asio::steady_timer timer_;
    // An interface made anew that could not be attached to at once (retry_reattach).
    boost::asio::steady_timer reattach_timer_;
    std::optional<std::string> reattach_to_;
    Resume reattach_resume_;
    std::string reattach_error_; // the last failure, logged once
    // When timer_ fires, while a wait is pending: an input that brings no earlier deadline
    // leaves it be (a flood of frames must not cost a timer reset each).
    std::optional<std::chrono::milliseconds> timer_at_;
    // When a late tick last left frames unread in a socket (logged at most once a minute).
    std::optional<std::chrono::milliseconds> backlog_logged_;
    std::chrono::milliseconds next_periodic_{0}; // connection scan, once a period
    std::chrono::milliseconds last_scan_{0};
    std::chrono::milliseconds last_accepted_{0}; // accepted count read without a scan
    std::chrono::milliseconds last_restore_{0};  // restore_interface
    std::string restore_error_;                  // its last error, logged once
    std::optional<std::uint64_t> claims_seen_;   // watch_claims: the counter as last read
    std::optional<std::chrono::milliseconds> claim_logged_;
    std::size_t mtu_seen_ = 0; // watch_mtu: the cluster interface's MTU as last told the engine
    ReceiveWatch receive_watch_; // receiving()
    std::unique_ptr<ReceiveProbe> receive_probe_; // what the watch asks; null: detached
    // rule_totals().established as read with the accepted count, and as of the last scan:
    // their difference is what quiet_scan_due weighs against the tables' capacity (after an
    // adoption or a new dataplane it reads wrong once, and brings one scan early).
    std::uint64_t established_seen_ = 0;
    std::uint64_t established_scanned_ = 0;
    std::chrono::milliseconds next_arm_{0};      // watchdog, at least four times per timeout
    std::chrono::milliseconds armed_look_{-1};   // the engine's look the armed deadline counts from
    std::chrono::milliseconds armed_until_{-1};  // the deadline armed
    std::chrono::milliseconds seen_confirmed_{-1}; // the engine's cached bound, last looked at
    std::shared_ptr<const SlotViews> installed_;
    bool announced_ = false;
    // `nlbadm prepare-restart`: a SIGTERM before this instant is a restart (shutdown()).
    std::optional<std::chrono::milliseconds> restart_until_;
    bool armed_ = false; // the watchdog was armed by this agent since attach
    bool expired_logged_ = false;
    // Source MACs written to the dataplane's nlb_hb_trusted, so each is written once (bounded:
    // cleared when it holds as many as the map), as 48-bit numbers: looked up for every frame,
    // where a std::set of byte arrays cost 3 % of an agent's CPU in memcmp (64 hosts, 100 ms).
    std::unordered_set<std::uint64_t> trusted_sources_;

    // For stats(): what a scrape must not recompute (a connection scan per scrape would let
    // anyone who reaches the metrics port make the agent walk its tables).
    ConnectionTracking tracking_;
    std::uint64_t tracked_connections_ = 0; // live entries found by the last connection scan
    std::uint64_t convergences_ = 0;        // completed since the agent started
    std::uint64_t config_switches_ = 0;     // to a staged configuration, since the start
    std::optional<std::chrono::milliseconds> convergence_started_;
    std::chrono::milliseconds last_convergence_{0};
    // The loop thread's schedstat, sampled once a period: a stall's log line says how much of
    // it the loop ran and waited for a CPU (apply). Made here, on the loop's thread.
    ThreadSchedStat sched_;
    std::optional<SchedSample> sched_mark_;
    std::chrono::milliseconds sched_mark_at_{0};
    // Last member: destroyed first, it calls into the rest. Exists while attached with
    // cluster.remote_control on.
    std::unique_ptr<RemoteServer> remote_;
};

// Milliseconds of CLOCK_MONOTONIC: the engine's clock.
std::chrono::milliseconds monotonic_now();

} // namespace nlb
