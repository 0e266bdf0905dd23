// The agent's clock: one timer for the engine's deadlines and the periodic duties (connection
// scans, load feedback, the dataplane's watchdog).
#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>

#include "agent.hpp"
#include "conn_scanner.hpp"

namespace nlb {

using std::chrono::milliseconds;

void Agent::schedule(milliseconds at) {
    milliseconds now = monotonic_now();
    milliseconds wait = at > now ? at - now : milliseconds(0);
    // Never sleep past the next periodic duty (watchdog, connection scan).
    const milliseconds duty = std::min(next_periodic_, next_arm_);
    wait = std::min(wait, duty > now ? duty - now : milliseconds(0));
    if (timer_at_ && *timer_at_ <= now + wait)
        return; // fires soon enough; tick() schedules again
    const milliseconds due = now + wait;
    timer_at_ = due;
    timer_.expires_after(wait);
    timer_.async_wait([this, due](const boost::system::error_code& ec) {
        if (ec)
            return;
        timer_at_.reset();
        tick(due);
    });
}

void Agent::tick(milliseconds due) {
    if (!engine_)
        return;
    // A tick that comes late (the agent was held up) first takes in the frames that queued
    // meanwhile: it decides who is dead, and would count peers dead whose frames wait in a
    // socket, then hear them again a moment later, each a change of view and a convergence (on
    // the loaded 64-host bed a joiner counted 23 peers dead and heard all 23 again 1 ms later,
    // and took 4 s to converge; an older build's host, starved, counted 45 peers dead, went
    // on alone and took their buckets while they served). Up to what each socket can hold:
    // its buffer (4-8 MB) fits a few thousand heartbeats, and four batches (the cap
    // until 2026-12-05) were 0.4 s of that cluster's frames at 100 ms, less than the
    // watchdog's timeout, so a tick held up shorter than a stall could still find frames
    // waiting. Only a flood, which the dataplane's budget for unknown sources keeps off the
    // segment socket, fills more; then the tick goes on (its turn must come) and says so.
    // A tick on time leaves them to the reader's linger, whose batches they join (drained at
    // every tick, they split those batches, each part one more decision of the engine); the
    // loop runs the reader's turns between its ticks, so a reader falls behind only when the
    // whole loop does, and its ticks are then late.
    if (monotonic_now() - due > heartbeat_linger()) {
        constexpr std::size_t kDrainCap = 64 * BatchReader::kBatch;
        bool emptied = !hb_ || hb_->drain(kDrainCap);
        if (contact_ && engine_)
            emptied = contact_->drain(kDrainCap) && emptied;
        if (!engine_)
            return;
        const milliseconds at = monotonic_now();
        if (!emptied && (!backlog_logged_ || at - *backlog_logged_ >= std::chrono::minutes(1))) {
            backlog_logged_ = at;
            log_.warn("heartbeats: a late tick read " + std::to_string(kDrainCap) +
                      " queued frames of a socket and more wait (a flood?): peers whose "
                      "frames wait may be counted dead");
        }
    }
    milliseconds now = monotonic_now();
    watch_link(now);
    if (!engine_)
        return;
    // The engine first: after a stall it must release what it owned before the watchdog is
    // refreshed, or the dataplane would serve buckets the cluster has taken meanwhile.
    engine_->on_tick(now);
    apply(engine_->take_decision());
    if (!engine_)
        return;
    if (now >= next_periodic_) {
        if (interface_replaced()) {
            reattach(); // a new engine and timer, or none
            return;
        }
        periodic(now);
    }
    keep_watchdog(now);
}

// The host's link: the interface the dataplane is on and, for a VLAN cluster, the one its
// heartbeats leave by. Down (its carrier lost, or set down) the host is cut off, and knows it:
// the engine then neither serves alone nor, once the link is back, beside the peers that took
// over meanwhile (docs/convergence.md, "Link down"). An interface that cannot be asked (gone)
// is interface_replaced's affair.
void Agent::watch_link(milliseconds now) {
    if (!dp_ || !iface_)
        return;
    const std::string& attached = dp_->interface();
    const std::string& cluster = iface_->plan().ifname;
    const std::optional<bool> a = link_probe_.up(attached);
    const std::optional<bool> c = cluster == attached ? a : link_probe_.up(cluster);
    const bool carrier = a.value_or(true) && c.value_or(true);
    if (!carrier) // the silence that follows proves nothing of the receive path
        receive_watch_.lost_carrier(now.count());
    const bool up = carrier && receiving(now);
    if (receive_probe_ && !receive_watch_.probing())
        receive_probe_->close();
    if (up == engine_->link_up())
        return;
    std::string why;
    if (carrier) {
        why = "no peer's frame for " + std::to_string(receive_watch_.silent_for(now.count())) +
              " ms and no client's frame";
        if (receive_probe_ && receive_probe_->can_probe())
            why += ", no answer from the gateway " + receive_probe_->gateways()[0].to_string();
        why += ": nothing received";
    }
    engine_->on_link(up, now, why);
    apply(engine_->take_decision());
    if (up && iface_) // ifup put the host's own addresses back; ours are ours to put back
        restore_interface(now);
}

// Whether the host still receives (ReceiveWatch says when not): a link that fails one way, a
// switch port or a NIC's receive path that failed, a fibre broken one way, while its own frames
// still leave. It counted its peers dead, served every bucket alone, and its peers, counted out
// of its epoch or meeting a group whose leader never answered, let go of theirs for it: every
// request lost until the fault ended (fault test rx_dead, the build before). Told, the engine
// does as for a link down: no epoch alone, frames that count only as heard (kFlagLinkDown),
// its buckets let go once its peers may take them, and a join once it hears again.
bool Agent::receiving(milliseconds now) {
    const int peers =
        std::popcount(engine_->view() & ~(std::uint64_t{1} << (config_.host.priority - 1)));
    ReceiveProbe* probe = receive_probe_.get();
    return receive_watch_.receiving(
        now.count(), config_.cluster.heartbeat_ms, engine_->counters().accepted, peers,
        probe && probe->can_probe(),
        [this, probe] { return client_frames() + (probe ? probe->heard() : 0); },
        [probe] { probe->send(); });
}

// Once a second, and as the link comes back: what the host's network configuration took off
// the interface goes back on (HostInterface::restore), and the VIPs are announced again.
// Until then the dataplane accepted this host's buckets and the stack dropped every packet
// for a VIP it no longer had: a silent black hole of the host's share (ifdown and ifup, a
// network manager's reconfiguration, the IPv6 VIPs of an interface set down and up).
void Agent::restore_interface(milliseconds now) {
    last_restore_ = now;
    std::vector<std::string> restored;
    try {
        restored = iface_->restore();
        restore_error_.clear();
    } catch (const std::exception& e) {
        if (restore_error_ != e.what())
            log_.error(e.what());
        restore_error_ = e.what();
        return;
    }
    if (restored.empty())
        return;
    std::string what;
    for (const std::string& r : restored)
        what += (what.empty() ? "" : ", ") + r;
    log_.warn(iface_->plan().ifname + ": " + what +
              " had gone from the interface (ifdown? a network manager?): put back");
    try {
        iface_->announce();
    } catch (const std::exception& e) {
        log_.error(e.what());
    }
}

// Once a second: another machine on the segment claiming a VIP (an ARP with it as sender, a
// neighbour advertisement of it, with a link-layer address that is not the cluster MAC; the
// dataplane counts them and notes the last, nlb_claim). The clients that believe it send that
// machine the VIP's traffic, an outage nothing else shows: announced again at once, each
// second while claims come, so that the clients turn back, and said at most once a minute.
void Agent::watch_claims(milliseconds now) {
    const std::uint64_t claims = dp_->maps().read_stats(NLB_STATS_GLOBAL).vip_claims;
    const bool rose = claims_seen_ && claims > *claims_seen_;
    claims_seen_ = claims; // the first read is the baseline: what a kept dataplane counted
    if (!rose)
        return;
    try {
        iface_->announce();
    } catch (const std::exception& e) {
        log_.error(e.what());
    }
    if (claim_logged_ && now - *claim_logged_ < std::chrono::minutes(1))
        return;
    claim_logged_ = now;
    const nlb_claim c = dp_->maps().state().claim;
    IpAddress vip{};
    vip.family = c.family;
    std::copy(std::begin(c.addr), std::end(c.addr), vip.words.begin());
    MacAddress mac{};
    std::copy(std::begin(c.mac), std::end(c.mac), mac.begin());
    const std::string by = "VIP " + vip.to_string() + " is claimed on the segment by " +
                           to_string(mac) + " (" +
                           (c.family == NLB_FAMILY_V6 ? "neighbour advertisement" : "ARP") + ")";
    // 02-BF-a-b-c-d (unicast) or 03-BF-a-b-c-d (multicast): another nlb cluster's MAC, whose
    // cluster IP is a.b.c.d. Each cluster's dataplanes judge only frames to their own, so no
    // request is answered twice; but the two take turns at the clients.
    if ((mac[0] == 0x02 || mac[0] == 0x03) && mac[1] == 0xbf)
        log_.warn(by + ", the cluster MAC of another nlb cluster (cluster IP " +
                  std::to_string(mac[2]) + "." + std::to_string(mac[3]) + "." +
                  std::to_string(mac[4]) + "." + std::to_string(mac[5]) +
                  "): both serve this VIP, each to the clients that believe its MAC (check "
                  "cluster.ip and cluster.vips on both); the VIPs are announced again. "
                  "vip_claims counts them");
    else
        log_.warn(by + ", not the cluster MAC: a machine with this address configured takes "
                       "the clients that believe it; the VIPs are announced again (remove the "
                       "address there). vip_claims counts them");
}

// Once a second, and at attach: the MTU of the interface heartbeats leave by, which the
// engine sizes them to (docs/convergence.md, "Frame size"). An operator may change it at any
// time (ip link set mtu); a frame longer than it is not sent at all.
void Agent::watch_mtu() {
    const std::optional<std::size_t> mtu = link_probe_.mtu(iface_->plan().ifname);
    if (!mtu || *mtu == mtu_seen_)
        return;
    const bool first = mtu_seen_ == 0;
    engine_->set_mtu(*mtu);
    const std::string was = first ? "" : " (was " + std::to_string(mtu_seen_) + ")";
    mtu_seen_ = *mtu;
    if (*mtu < kMinMtu)
        log_.error(iface_->plan().ifname + ": MTU " + std::to_string(*mtu) + was + " is below " +
                   std::to_string(kMinMtu) +
                   ", the size of a map transfer's frames: joining "
                   "hosts cannot receive the cluster's map");
    else if (!first) // the first: the engine's frame_budget event says it where it matters
        log_.event("mtu", {{"interface", iface_->plan().ifname},
                           {"mtu", *mtu},
                           {"detail", "heartbeats sized to fit it" + was}});
}

// The dataplane's counters the periodic duties and the watch for a link that fails one way
// read: the rules' (33 slots of per-CPU counters) and the frames of clients they saw.
Agent::RuleTotals Agent::rule_totals() const {
    RuleTotals total;
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
        const nlb_stats st = dp_->maps().read_stats(slot);
        total.accepted += st.accepted;
        total.seen += st.accepted + st.dropped_not_owner + st.dropped_dirty + st.dropped_disabled +
                      st.dropped_watchdog;
        total.established += st.established;
    }
    return total;
}

std::uint64_t Agent::client_frames() const {
    const nlb_stats g = dp_->maps().read_stats(NLB_STATS_GLOBAL);
    return rule_totals().seen + g.arp_replied + g.nd_replied + g.neigh_dropped + g.passed_other +
           g.fragments_unmatched;
}

// Once per heartbeat period: report connections.
void Agent::periodic(milliseconds now) {
    next_periodic_ = now + milliseconds(config_.cluster.heartbeat_ms);
    if (std::optional<SchedSample> s = sched_.read()) {
        sched_mark_ = s;
        sched_mark_at_ = now;
    }
    const bool decides = engine_->needs_scans();
    // While scans decide, the one below is fresher than any from the background.
    if (std::optional<ConnScan> quiet = tracking_.finished(log_); quiet && !decides) {
        last_accepted_ = now;
        tracked_connections_ = quiet->live;
        engine_->on_connection_scan(LiveBuckets{quiet->live_buckets}, accepted_total(), now);
    }
    // Every period while the scan can change a decision (given-up buckets still holding
    // connections, a drain): on the loop, before the engine's next decision. Otherwise it
    // only refreshes counts and deletes closed records (and feeds load feedback on
    // connections), on the background thread, whose result the next periods take: a short
    // period would make it most of the agent's work (measured: 35 % of it at 200 ms), a full
    // table even more, so it waits as long as its cost says (quiet_scan_interval), or until
    // the connections recorded since could crowd the tables (quiet_scan_due). The accepted
    // count, which a partition heal compares, is read on its own once a second with the
    // recorded one: 33 lookups of per-CPU counters; read every period at 100 ms, 64 idle
    // agents used 0.1-0.2 % of a core more each, side by side.
    if (decides)
        scan_connections_now(now);
    const bool quiet = !decides && ((load_ && load_->counts_connections()) ||
                                    quiet_scan_due(now - last_scan_, tracking_.quiet_interval(),
                                                   established_seen_ - established_scanned_,
                                                   dp_->table_sizes().established));
    if ((quiet || tracking_.upkeep_due()) &&
        tracking_.start_background(*dp_, tables_.vips(), quiet, log_) && quiet) {
        last_scan_ = now;
        established_scanned_ = established_seen_;
    }
    if (iface_ && now - last_restore_ >= std::chrono::seconds(1)) {
        restore_interface(now);
        watch_claims(now);
        watch_mtu();
        if (receive_probe_)
            receive_probe_->refresh_gateways();
    }
    if (now - last_accepted_ >= std::chrono::seconds(1)) {
        last_accepted_ = now;
        const RuleTotals totals = rule_totals();
        engine_->on_accepted_total(totals.accepted);
        established_seen_ = totals.established;
    }
    if (load_) {
        // Measured once a period (connections as of the last scan), published with the next
        // heartbeat; a weight that moves reconverges the cluster like an operator's
        // load_weight change.
        load_->sample(tracking_.last().live_by_rule, *health_, now);
        load_->publish(*engine_);
        if (load_->update(*engine_, now) && !engine_->set_host_rules(host_rules(), now))
            log_.error("load feedback: the engine refused the effective weights");
    }
    apply(engine_->take_decision());
}

// The dataplane stops accepting unless this is repeated within (tolerance − 1) periods: it is
// repeated at least four times per timeout (and after inputs: keep_watchdog), so that a late
// timer never expires it on a healthy host, and not at all from a stall until the engine has
// converged again (DESIGN §3, "Watchdog").
// The timeout counts from the engine's last look at the clock (its latest input), not from
// the refresh: an agent held up in between (a scan on a starved machine, a pause) for longer
// than the timeout finds its dataplane stopped rather than revived on maps the cluster may
// have left behind (it took this host's buckets meanwhile). The engine then looks again at
// once, sees the gap as a stall and recovers.
milliseconds Agent::watchdog_timeout() const {
    return milliseconds(std::int64_t{config_.cluster.heartbeat_tolerance - 1} *
                        config_.cluster.heartbeat_ms);
}

void Agent::arm_watchdog(milliseconds now) {
    const milliseconds timeout = watchdog_timeout();
    next_arm_ = now + std::max(milliseconds(1), timeout / 4);
    const bool expired = armed_ && dp_->maps().state().config.alive == 0;
    auto log_expired = [&](const std::string& why) {
        expired_logged_ = true;
        log_.event("watchdog_expired", {{"message", "the dataplane stopped accepting: " + why}});
    };
    if (engine_->recovering()) {
        if (expired && !expired_logged_)
            log_expired("this agent missed its refresh (stalled?)");
        return;
    }
    const milliseconds looked = engine_->last_input();
    if (looked.count() < 0)
        return; // no look yet: nothing to vouch for
    // The sooner of the timeout and the peers' confirmations (docs/convergence.md,
    // "Confirmed heartbeats"): a peer that last took in a frame of this host's long ago may
    // take its buckets before the timeout has run. Worked out fresh where it is the sooner: a
    // cached one may miss the last frames' confirmations and stop the dataplane early.
    const auto confirmed = engine_->confirmed_until_after(looked + timeout);
    const milliseconds until = std::min(looked + timeout, confirmed.until);
    bool armed = false;
    try {
        const auto ns = [](milliseconds ms) {
            return static_cast<std::uint64_t>(ms.count()) * 1000000ULL;
        };
        armed = dp_->arm_watchdog(ns(until), ns(timeout));
    } catch (const std::exception& e) {
        log_.error(e.what());
        armed_look_ = looked; // retried at the timer's pace, not at every input
        armed_until_ = until;
        return;
    }
    if (armed) {
        if (expired && !expired_logged_)
            log_expired("this agent missed its refresh (stalled?)");
        armed_ = true;
        armed_look_ = looked;
        armed_until_ = until;
        expired_logged_ = false;
        return;
    }
    // Logged at every refusal: the engine recovers from it before the next refresh.
    if (until < looked + timeout && !engine_->link_up())
        log_expired("the link is down: " +
                    (confirmed.by ? "host " + std::to_string(confirmed.by)
                                  : std::string("a peer starting meanwhile")) +
                    " may take this host's buckets from now on");
    else if (until < looked + timeout)
        log_expired("host " + std::to_string(confirmed.by) +
                    " has taken in no heartbeat of this host's for too long: it may take this "
                    "host's buckets (" +
                    std::to_string((monotonic_now() - until).count()) + " ms past the bound)");
    else
        log_expired("this agent was held up for " +
                    std::to_string((monotonic_now() - looked).count()) +
                    " ms since its engine's last look (watchdog " +
                    std::to_string(timeout.count()) + " ms)");
    engine_->on_tick(monotonic_now());
    apply(engine_->take_decision());
}

// The deadline counts from the look the last refresh saw. Refreshed from the timer alone, a
// loop held up right after handling an input (a CPU quota's throttling: at 1 % of a core the
// heartbeats were handled after a throttle, the timer's refresh only after the next one) let
// the watchdog expire on a host whose engine saw no stall, its inputs never a timeout apart.
// Refreshed after every input that moved the look a step on, a hold-up expires the watchdog
// without a stall only if it lasts between (timeout - step) and the timeout. A refresh costs
// 2.2 us (BPF_PROG_TEST_RUN, measured here): at most 16 a timeout, 40 a second at 100 ms.
// A bound the peers' confirmations brought nearer than the one armed is armed at once.
void Agent::keep_watchdog(milliseconds now) {
    const milliseconds step = std::max(milliseconds(1), watchdog_timeout() / 16);
    // The peers' bound came nearer (a peer's new boot, an older confirmation) when the
    // engine's cached bound fell: otherwise it only grows. Compared with the deadline armed,
    // which was worked out fresh, it would read as nearer after most inputs (the cache often
    // misses the last input's frames) and arm each time.
    const milliseconds confirmed = engine_->confirmed_until().until;
    const bool nearer = confirmed < seen_confirmed_ && confirmed < armed_until_;
    seen_confirmed_ = confirmed;
    if (now >= next_arm_ || armed_look_.count() < 0 ||
        engine_->last_input() - armed_look_ >= step || nearer)
        arm_watchdog(now);
}

bool Agent::scan_connections_now(milliseconds now) {
    last_scan_ = last_accepted_ = now;
    established_scanned_ = established_seen_;
    ConnScan scan = tracking_.scan(*dp_);
    tracked_connections_ = scan.live;
    if (!scan.complete) {
        // A table read that failed midway (the kernel's error) saw part of the records: a
        // bucket whose connections it missed would be released as clean, and a second host
        // would take their packets. Every bucket this host serves or tracks counts as holding
        // connections until a scan reads everything (the next comes within a period while
        // buckets are handed over); those it never had it does not claim.
        log_.warn(std::string("connection scan: reading the tables failed midway (") +
                  std::strerror(scan.error) +
                  "): every bucket served here held as busy until the next scan");
        const nlb_state& state = dp_->maps().state();
        for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
            for (std::size_t b = 0; b < NLB_BUCKETS; ++b)
                if (state.rules[s].bucket[b] & (NLB_BKT_MINE | NLB_BKT_TRACKED_HERE))
                    scan.live_buckets[s].set(b);
    }
    return engine_->on_connection_scan(LiveBuckets{scan.live_buckets}, accepted_total(), now);
}

} // namespace nlb
