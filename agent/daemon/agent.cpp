// The agent's life: start, attach (bring_up) and detach (tear_down), shutdown or restart,
// and the inputs that come from outside the engine (probes, load feedback's weights).
#include "agent.hpp"

#include <net/if.h>
#include <openssl/rand.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <nlb/maps.h>

#include "config_health.hpp"
#include "control_reply.hpp"
#include "engine_config.hpp"
#include "link_info.hpp"
#include "metrics_text.hpp"
#include "probe_cgroup.hpp"
#include "release_dataplane.hpp"

namespace nlb {

namespace {

TableSizes table_sizes(const Config& config) {
    return {config.host.opening_connections, config.host.established_connections};
}

} // namespace

using std::chrono::milliseconds;
using json = nlohmann::json;

std::chrono::milliseconds monotonic_now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return milliseconds(std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000);
}

namespace {

std::uint64_t boot_nonce() {
    std::uint64_t n = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&n), sizeof(n)) != 1)
        throw std::runtime_error("boot nonce: no randomness from OpenSSL");
    return n;
}

} // namespace

Agent::Agent(boost::asio::io_context& io, Config config, AgentOptions options, EventLog& log)
    : io_(io), config_(std::move(config)), options_(std::move(options)), log_(log),
      tables_(tables_of(config_)), start_wait_(options_.socket_path + ".start_wait"),
      health_(
          std::make_unique<HealthMonitor>(io, config_,
                                          [this](std::size_t probe, bool up, const CheckResult& r) {
                                              on_probe_verdict(probe, up, r);
                                          })),
      timer_(io), reattach_timer_(io) {
    auto load = std::make_unique<LoadFeedback>(io, config_, log);
    if (load->active())
        load_ = std::move(load);
}

Agent::~Agent() = default;

void Agent::start() {
    bool runs_commands = false;
    if (config_.health)
        for (const auto& probe : config_.health->probes)
            runs_commands = runs_commands || probe.type == ProbeType::exec;
    for (const auto& rule : config_.port_rules)
        runs_commands =
            runs_commands || (rule.load_feedback && rule.load_feedback->metric == LoadMetric::exec);
    if (runs_commands) {
        // Where each command runs decides what its kill reaches (docs/health.md).
        const std::string isolation = ProbeCgroup::prepare();
        if (ProbeCgroup::directory())
            log_.event("exec_isolation", {{"detail", isolation}});
        else
            log_.warn("exec commands: what one starts outside its process group outlives it (" +
                      isolation + ")");
    }
    health_->start();
    control_ = std::make_unique<ControlServer>(io_, options_.socket_path,
                                               [this](const json& r) { return answer(r); });
    if (config_.metrics) {
        // Before attaching: a port already taken stops the agent with the host untouched.
        boost::asio::ip::tcp::endpoint at(
            boost::asio::ip::make_address(config_.metrics->address.to_string()),
            config_.metrics->port);
        metrics_ =
            std::make_unique<MetricsServer>(io_, at, [this] { return metrics_text(stats()); });
    }
    // The configured sizes: a table the pins lack (an earlier release had no such table) is
    // created at them, not at the defaults; those pinned keep theirs.
    const Dataplane::PinnedLink pinned = Dataplane::pinned_link(options_.pin_dir);
    if (pinned.kind == Dataplane::PinnedLink::defunct) {
        // Its interface was deleted while no agent ran (ifupdown or networkd made it again):
        // the program and the VIPs went with it, and no program can take the link over. The
        // pins alone are left: removed, as a running agent's re-attach removes them.
        Dataplane::remove_pins(options_.pin_dir);
        log_.warn("the dataplane pinned in " + options_.pin_dir +
                  " was attached to an interface deleted since: its pins removed");
    } else if (pinned.kind == Dataplane::PinnedLink::here && config_.host.interface &&
               pinned.interface != *config_.host.interface) {
        // host.interface changed across a kept dataplane: "restart to apply it" must attach
        // where the configuration says, not adopt the old interface.
        take_down_pinned_dataplane(options_.pin_dir, options_.socket_path);
        log_.warn("the dataplane pinned in " + options_.pin_dir + " is on " + pinned.interface +
                  ", host.interface is " + *config_.host.interface + ": " + pinned.interface +
                  " released");
    }
    if (auto dp = Dataplane::adopt(options_.pin_dir, table_sizes(config_))) {
        log_.event("adopted", {{"interface", dp->interface()}, {"pin_dir", options_.pin_dir}});
        bring_up(std::move(dp));
    } else if (config_.host.interface) {
        bring_up(Dataplane::attach(*config_.host.interface, options_.pin_dir, options_.xdp_mode,
                                     table_sizes(config_)));
    } else {
        log_.event("waiting", {{"message", "no host.interface: waiting for nlbadm attach"}});
    }
}

// Everything attach does once the XDP program is in place; undone by tear_down.
void Agent::bring_up(std::unique_ptr<Dataplane> dp, const Resume* resume) {
    milliseconds now = monotonic_now();
    const std::string ifname = dp->interface();
    try {
        // First: the key files decide the seed the tables hash with.
        EngineConfig engine_config = engine_config_of(config_);
        engine_config.host.rules = host_rules(); // load feedback's weights survive a re-attach
        // The tolerance of the cluster an earlier run was in, when longer than this one's.
        engine_config.host.start_wait_ms = start_wait_.read();
        const std::uint32_t pinned_seed = dp->maps().state().config.flow_seed;
        if (dp->adopted() && engine_config.cluster.flow_seed_source == SeedSource::key &&
            (pinned_seed == 0 || pinned_seed == NLB_FLOW_SEED)) {
            // The dataplane still serves, hashing with the fixed seed (an earlier release's,
            // or one an earlier agent took from its cluster): keep it, as the engine would
            // have had it started beside that cluster (docs/dataplane.md, "The hash seed").
            engine_config.cluster.flow_seed = NLB_FLOW_SEED;
            engine_config.cluster.flow_seed_source = SeedSource::fixed;
            log_.event("seed_inherited", {{"detail", "the adopted dataplane hashes with the "
                                                     "fixed seed: kept"}});
        }
        // An adopted dataplane serves on: its VIPs keep their slots and port tables.
        const VipLayout pinned =
            VipLayout::of_slots(dp->maps().state().vips, dp->maps().state().config.vip_seed);
        tables_ =
            tables_of(config_, engine_config.cluster.flow_seed, dp->adopted() ? &pinned : nullptr);
        // Where the stack meets the cluster: the attached interface, or for a VLAN cluster
        // the VLAN's interface on it, which holds the VIPs and tags the heartbeats.
        const std::string cluster_if =
            cluster_interface(ifname, config_.cluster.vlan, config_.host.vlan_interface);
        const int cluster_ifindex = static_cast<int>(if_nametoindex(cluster_if.c_str()));
        if (!cluster_ifindex)
            throw std::runtime_error("attach " + ifname + ": " + cluster_if + " is gone");
        // A map transfer's frames (kMinMtu) would not pass: joining hosts could never take
        // the cluster's map, only give up waiting for it.
        if (const auto mtu = link_probe_.mtu(cluster_if); mtu && *mtu < kMinMtu)
            throw std::runtime_error("attach " + ifname + ": " + cluster_if + "'s MTU is " +
                                     std::to_string(*mtu) + ", below the " +
                                     std::to_string(kMinMtu) + " nlb's frames need");
        if (dp->adopted()) {
            // What the earlier agent put on the host, as its pins say (its cluster MAC, its
            // VLAN's interface), where this configuration has another: a restart is how a
            // cluster IP, mode or VLAN change is applied, and the detach only knows this one's.
            const InterfacePlan before = pinned_interface_plan(
                ifname, dp->maps().state().config, dp->maps().state().vips, options_.socket_path);
            if (before.ifname != cluster_if) {
                HostInterface::take_down(before);
                log_.event("vips_removed", {{"vips", to_strings(before.vips)},
                                            {"interface", before.ifname},
                                            {"why", "not the configuration's cluster interface"}});
            } else {
                // An earlier agent's VIPs this configuration lacks: off the interface before
                // the tables forget them (the stack must not keep a VIP the dataplane stops
                // filtering).
                const auto gone =
                    HostInterface::remove_vips(cluster_if, pinned.vips, tables_.vips());
                if (!gone.empty())
                    log_.event("vips_removed",
                               {{"vips", to_strings(gone)}, {"why", "not in the configuration"}});
                if (cluster_mac(before.cluster_ip, before.mode) !=
                    cluster_mac(config_.cluster.ip.words[0], config_.cluster.mode))
                    HostInterface::remove_cluster_mac(before);
            }
        }
        DataplaneMaps& maps = dp->maps();
        if (dp->adopted()) {
            // The earlier agent's ownership stays in force until this one's engine installs
            // its maps, seconds from now. Where this configuration decides a rule's packets
            // otherwise (a file edited before a restart), that ownership means other clients
            // than the cluster gave this host: given up before the tables change, as a staged
            // switch releases its changed slots first. Tracked connections keep their host.
            const std::uint64_t changed = maps.slots_changed_by(tables_);
            for (std::uint32_t s = 0; s < NLB_RULE_SLOTS; ++s)
                if (changed >> s & 1)
                    for (auto& e : maps.state().rules[s].bucket)
                        if (e & NLB_BKT_MINE)
                            e = static_cast<std::uint16_t>((e & ~NLB_BKT_MINE) |
                                                           NLB_BKT_TRACKED_HERE);
            if (changed)
                log_.event("adopted_rules_changed",
                           {{"slots", changed},
                            {"detail", "buckets of rules this configuration "
                                       "decides otherwise given up"}});
        }
        nlb_config cfg{};
        MacAddress own = interface_mac(ifname);
        std::memcpy(cfg.own_mac, own.data(), 6);
        MacAddress cmac = cluster_mac(config_.cluster.ip.words[0], config_.cluster.mode);
        MacAddress src = masked_source_mac(config_.cluster.ip.words[0], config_.host.priority);
        std::memcpy(cfg.cluster_mac, cmac.data(), 6);
        std::memcpy(cfg.arp_src_mac, src.data(), 6);
        cfg.host_priority = config_.host.priority;
        cfg.vlan = config_.cluster.vlan;
        cfg.flags = NLB_CFG_ANSWER_NEIGH;
        if (config_.cluster.remote_control)
            cfg.flags |= NLB_CFG_REMOTE_CONTROL;
        maps.write_config(cfg);
        maps.write_tables(tables_);
        // Before the VIPs go on the interface: from then on the kernel may solicit from one.
        // On adoption too, where the earlier agent's config may have had other VIPs.
        dp->set_nd_egress(has_ipv6(tables_.vips()));
        write_rule_modes(maps);
        if (!dp->adopted())
            for (auto& rule : maps.state().rules) // nothing owned until converged
                std::memset(rule.bucket, 0, sizeof(rule.bucket));

        InterfacePlan plan;
        plan.ifname = cluster_if;
        plan.mode = config_.cluster.mode;
        plan.cluster_ip = config_.cluster.ip.words[0];
        plan.vips = tables_.vips();
        plan.host_priority = config_.host.priority;
        // Beside the control socket (the unit's runtime directory, kept across restarts and
        // gone at reboot, as a kept dataplane is).
        plan.saved_settings = options_.socket_path + ".arp_announce";
        iface_ = std::make_unique<HostInterface>(plan);
        cluster_ifindex_ = cluster_ifindex;

        // Heartbeats go where client frames go (the cluster MAC, in every mode): a host that
        // cannot receive those cannot look alive to the others (docs/convergence.md).
        hb_ = std::make_unique<HeartbeatSocket>(
            io_, cluster_ifindex, cluster_mac(config_.cluster.ip.words[0], config_.cluster.mode));
        // What the watch for a link that fails one way asks of the segment (ReceiveWatch):
        // from the stack's own MAC and dedicated IP, the gateways through it.
        receive_probe_ = std::make_unique<ReceiveProbe>(
            cluster_if, cluster_ifindex, interface_mac(cluster_if), config_.host.dedicated_ip);
        receive_probe_->refresh_gateways();
        engine_ = std::make_unique<ConvergenceEngine>(engine_config, boot_nonce(), now);
        mtu_seen_ = 0;
        receive_watch_.restart(now.count());
        watch_mtu(); // before its first heartbeat
        contact_error_.clear();
        try {
            contact_ = std::make_unique<ContactSocket>(io_, engine_config.host.contact);
        } catch (const std::exception& e) {
            // Heartbeats still flow on the segment; the host is only less sure of its peers.
            contact_error_ = e.what();
            log_.warn(contact_error_ + " (no second path: is host.dedicated_ip on this host?)");
        }
        if (config_.cluster.remote_control) // the config guarantees a key file then
            remote_ = std::make_unique<RemoteServer>(
                io_,
                RemoteServer::Identity{config_.cluster.ip.words[0], config_.host.priority,
                                       config_.host.dedicated_ip.to_string()},
                RemoteServer::Keys{engine_config.cluster.key, engine_config.cluster.rotation_key},
                RemoteServer::replay_state_path(options_.socket_path),
                [this](const json& request) { return answer(request); },
                // Every host expected to answer: the members, and the live peers that are
                // none (a stopped host, for one, which a `start` to the cluster addresses).
                [this] {
                    return members_of(engine_ ? (is_member() ? engine_->members() : 0) |
                                                    engine_->view() | engine_->alive_peers()
                                              : 0);
                },
                log_);
        if (config_.cluster.igmp_querier) { // the config ensures igmp mode, an IPv4 dedicated IP
            try {
                querier_ = std::make_unique<IgmpQuerier>(
                    io_, cluster_ifindex, cluster_if, config_.host.dedicated_ip.words[0],
                    std::chrono::seconds(config_.cluster.igmp_query_interval_s), log_);
            } catch (const std::exception& e) {
                // The cluster works without it; switches without a querier flood or forget.
                log_.warn(e.what());
            }
        }
        dp_ = std::move(dp);
        set_heartbeat_linger();
        hb_->start(
            [this](std::span<const std::uint8_t> f, const MacAddress& source,
                   std::chrono::steady_clock::time_point arrival) {
                heartbeat(f, Path::segment, arrival, &source);
            },
            [this] { heartbeats_read(); });
        if (contact_)
            contact_->start(
                [this](std::span<const std::uint8_t> f) {
                    heartbeat(f, Path::contact, contact_->arrival());
                },
                [this] { heartbeats_read(); });
        if (querier_)
            querier_->start();
    } catch (...) {
        remote_.reset();
        querier_.reset();
        contact_.reset();
        hb_.reset();
        receive_probe_.reset();
        if (iface_)
            iface_->undo();
        iface_.reset();
        engine_.reset();
        if (dp && !dp->adopted())
            dp->detach();
        // Failed once it was in place (a socket's start): no half-attached host, whose
        // dataplane nothing refreshes and which an attach would take for attached.
        if (dp_ && !dp_->adopted())
            dp_->detach();
        dp_.reset();
        throw;
    }
    for (const MigratedMap& m : dp_->migrated())
        log_.event(
            "dataplane_migrated",
            {{"map", m.name}, {"copied", m.copied}, {"refused", m.refused}, {"fresh", m.fresh}});
    log_.event("attached", {{"interface", ifname},
                            {"xdp_mode", dp_->generic() ? "generic" : "native"},
                            {"reason", dp_->mode_reason()},
                            {"adopted", dp_->adopted()}});
    announced_ = false;
    // Before the engine's first input: seeding the tables from the stack's connections takes
    // seconds on a loaded machine (3.5 s seen with 64 agents on 2 cores), and a gap that long
    // after the start command would read as a stall of this agent (released everything,
    // logged `stalled`, converged again).
    tracking_.start(*dp_, tables_.vips(), log_);
    // Attaching took time (loading, netlink): the engine's inputs carry the time they happen.
    now = monotonic_now();
    // Before start: a rule whose probe has not passed `rise` times yet gets no share. The
    // probes guard the rules by their places in this configuration (a reload while detached
    // may have moved them).
    health_->set_rules(config_);
    engine_->set_probe_down(health_->down_rules(), now);
    disable_rules_off_here(now);
    if (resume) {
        resume_controls(*resume, now);
    } else {
        switch (config_.host.initial_state) {
        case InitialState::started:
            engine_->on_command({CommandKind::start, -1}, now);
            break;
        case InitialState::suspended:
            engine_->on_command({CommandKind::suspend, -1}, now);
            break;
        case InitialState::stopped:
            break;
        }
    }
    // A restarted agent learns at once which connections the dataplane still serves (once
    // participating, so the engine keeps them), so that its first maps keep serving them.
    scan_connections_now(now);
    next_periodic_ = now;
    next_arm_ = now;
    apply(engine_->take_decision());
    // A set staged before a detach waits for the cluster again: the host comes back running
    // what it ran, the new set staged beside it, as before (the others may be waiting for it).
    if (staged_) {
        Config next = std::move(*staged_);
        staged_.reset();
        apply_config(std::move(next), "attach");
    }
}

void Agent::tear_down(bool keep_dataplane, bool leave) {
    timer_.cancel();
    timer_at_.reset();
    trusted_sources_.clear();
    remote_.reset();
    if (engine_ && hb_ && leave) {
        // Leaving: the others see state stopped and converge at once, without waiting for
        // this host's heartbeats to time out. The engine paces its frames (at most four a
        // period), so wait for the one that says so: a quarter period at most.
        engine_->on_command({CommandKind::stop, -1}, monotonic_now());
        Decision d = engine_->take_decision();
        const milliseconds limit = monotonic_now() + milliseconds(config_.cluster.heartbeat_ms);
        while (d.frames.empty() && monotonic_now() < limit) {
            std::this_thread::sleep_for(std::min(d.next_tick - monotonic_now(), limit - monotonic_now()));
            engine_->on_tick(monotonic_now());
            Decision next = engine_->take_decision();
            if (next.maps)
                d.maps = next.maps;
            d.frames = std::move(next.frames);
            d.contact = std::move(next.contact);
            d.next_tick = next.next_tick;
        }
        // The maps before the frames, as apply() has them: the frame tells the others they
        // may take this host's buckets, which its dataplane must have given up by then.
        if (d.maps && dp_)
            install(*d.maps);
        for (const auto& f : d.frames)
            hb_->send(f);
        if (contact_)
            for (const auto& c : d.contact)
                contact_->send(c.to, c.frame);
    }
    if (querier_)
        querier_->close();
    querier_.reset();
    if (contact_)
        contact_->close();
    contact_.reset();
    if (hb_)
        hb_->close();
    hb_.reset();
    receive_probe_.reset();
    engine_.reset();
    installed_.reset();
    armed_ = false;
    armed_look_ = milliseconds(-1);
    // Its background work reads the tables: done before they go.
    tracking_.stop();
    if (iface_ && !keep_dataplane)
        iface_->undo();
    iface_.reset();
    if (dp_ && !keep_dataplane) {
        std::string ifname = dp_->interface();
        dp_->detach();
        log_.event("detached", {{"interface", ifname}});
    }
    dp_.reset();
}

bool Agent::shutdown() {
    const bool restart = restart_until_ && monotonic_now() < *restart_until_;
    if (restart)
        log_.event("restarting", {{"interface", dp_ ? dp_->interface() : std::string()}});
    tear_down(options_.keep_dataplane || restart, !restart);
    control_.reset();
    return restart;
}

std::vector<HostRuleParams> Agent::host_rules() const {
    std::vector<HostRuleParams> params = host_rule_params(config_);
    if (load_)
        load_->apply_to(params);
    return params;
}

void Agent::on_probe_verdict(std::size_t probe, bool up, const CheckResult& result) {
    json rules = json::array();
    const std::uint32_t guarded = guarded_rules(config_.health->probes[probe], config_.port_rules);
    for (std::size_t r = 0; r < config_.port_rules.size(); ++r)
        if (guarded >> r & 1)
            rules.push_back(r);
    log_.event(up ? "probe_up" : "probe_down", {{"probe", health_->name(probe)},
                                                {"result", to_string(result.outcome)},
                                                {"detail", result.detail},
                                                {"rules", rules}});
    if (!engine_)
        return;
    engine_->set_probe_down(health_->down_rules(), monotonic_now());
    apply(engine_->take_decision());
}

json Agent::attach(const std::string& ifname) {
    reattach_to_.reset();
    reattach_timer_.cancel();
    if (dp_) {
        if (dp_->interface() == ifname)
            return ok({{"interface", ifname}, {"changed", false}});
        return error("attach " + ifname + ": already attached to " + dp_->interface() +
                     " (detach it first)");
    }
    bring_up(Dataplane::attach(ifname, options_.pin_dir, options_.xdp_mode, table_sizes(config_)));
    return ok({{"interface", ifname}, {"changed", true},
               {"xdp_mode", dp_->generic() ? "generic" : "native"},
               {"xdp_mode_reason", dp_->mode_reason()}});
}

bool Agent::interface_replaced() const {
    if (!dp_ || !iface_)
        return false;
    const auto index = [](const std::string& name) {
        return static_cast<int>(if_nametoindex(name.c_str()));
    };
    // Only once every name it needs is back (a VLAN comes back after its lower interface,
    // seconds later behind a bond): gone and not back yet, it is left as it is.
    const int attached = index(dp_->interface());
    const int cluster = index(iface_->plan().ifname);
    // The link too: an interface made again under its old index (one given explicitly, one
    // moved in from another namespace) has the same index and none of what the attach put on.
    return attached && cluster &&
           (attached != dp_->ifindex() || cluster != cluster_ifindex_ || dp_->link_defunct());
}

// ifupdown or networkd rebuilding a bond or a VLAN deletes the interface and creates it again:
// the XDP program and the VIPs go with the old one, and the heartbeat socket stays bound to
// its index, every send failing. The host was refused until someone detached and attached
// it again. The dataplane's connection records go with the fresh attach: the connections
// through the old interface are gone with its addresses anyway.
void Agent::reattach() {
    const std::string ifname = dp_->interface();
    Resume resume;
    // A host refused after a drainstop has let go of what it drained: the drainstop stands.
    resume.state = !engine_ || engine_->refused_draining() ? HostState::stopped : engine_->state();
    for (std::size_t r = 0; engine_ && r < config_.port_rules.size(); ++r)
        resume.rules.push_back(engine_->rule_control(r));
    log_.warn("interface " + ifname + " (or its VLAN interface) was deleted and created " +
              "again: its XDP program and VIPs went with it; attaching afresh");
    tear_down(false);
    reattach_to_ = ifname;
    reattach_resume_ = std::move(resume);
    reattach_error_.clear();
    retry_reattach();
}

void Agent::retry_reattach() {
    if (!reattach_to_ || dp_)
        return;
    const std::string ifname = *reattach_to_;
    try {
        bring_up(
            Dataplane::attach(ifname, options_.pin_dir, options_.xdp_mode, table_sizes(config_)),
            &reattach_resume_);
        reattach_to_.reset();
        return;
    } catch (const std::exception& e) {
        // A bond's VLAN, its address or its offloads may take seconds to come back.
        if (reattach_error_ != e.what()) {
            reattach_error_ = e.what();
            log_.error(reattach_error_ + " (trying again every second; nlbadm detach stops it)");
        }
    }
    reattach_timer_.expires_after(std::chrono::seconds(1));
    reattach_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec)
            retry_reattach();
    });
}

// The operator's stop, suspend, drainstop and rule commands outlive the interface.
void Agent::resume_controls(const Resume& resume, milliseconds now) {
    for (std::size_t r = 0; r < resume.rules.size() && r < config_.port_rules.size(); ++r)
        if (resume.rules[r] != RuleControl::enabled)
            engine_->on_command({resume.rules[r] == RuleControl::disabled
                                     ? CommandKind::rule_disable
                                     : CommandKind::rule_drain,
                                 static_cast<int>(r)},
                                now);
    switch (resume.state) {
    case HostState::stopped:
        break;
    case HostState::suspended:
        engine_->on_command({CommandKind::suspend, -1}, now);
        break;
    case HostState::draining:
        engine_->on_command({CommandKind::start, -1}, now);
        engine_->on_command({CommandKind::drainstop, -1}, now);
        break;
    default:
        engine_->on_command({CommandKind::start, -1}, now);
        break;
    }
}

json Agent::detach() {
    if (!dp_ && reattach_to_) {
        const std::string ifname = *reattach_to_;
        reattach_to_.reset();
        reattach_timer_.cancel();
        return ok({{"interface", ifname}});
    }
    if (!dp_)
        return error("detach: not attached");
    std::string ifname = dp_->interface();
    tear_down(false);
    return ok({{"interface", ifname}});
}

} // namespace nlb
