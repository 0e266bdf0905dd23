// The engine's inputs from the heartbeat sockets and its decisions carried out: events
// logged, bucket maps installed (a release rescans first), frames sent.
#include <algorithm>
#include <cstring>

#include <nlb/maps.h>

#include "agent.hpp"
#include "bucket_entries.hpp"
#include "program_barrier.hpp"

namespace nlb {

using json = nlohmann::json;

void Agent::heartbeat(std::span<const std::uint8_t> frame, Path path,
                      std::chrono::steady_clock::time_point arrival, const MacAddress* source) {
    if (!engine_)
        return;
    engine_->begin_frames(); // decided on once the reader's turn ends: heartbeats_read
    engine_->on_heartbeat(
        frame, monotonic_now(), path,
        std::chrono::duration_cast<std::chrono::milliseconds>(arrival.time_since_epoch()));
    std::uint64_t mac = 0;
    if (source)
        std::memcpy(&mac, source->data(), source->size());
    if (source && dp_ && engine_->last_frame_trusted() && !trusted_sources_.contains(mac)) {
        // A member's frames now pass the dataplane outside the budget that unknown (forged)
        // sources share (docs/dataplane.md).
        try {
            if (trusted_sources_.size() >= NLB_HB_TRUSTED_ENTRIES) {
                dp_->maps().clear_trusted_sources();
                trusted_sources_.clear();
            }
            // Emptied because an earlier agent's sources filled it: the members this agent
            // had written are gone too, and are written again as they are heard. Kept as
            // written, they would have shared the forged frames' budget for good.
            if (dp_->maps().trust_heartbeat_source(*source))
                trusted_sources_.clear();
            trusted_sources_.insert(mac);
        } catch (const std::exception& e) {
            log_.error(e.what());
        }
    }
}

void Agent::heartbeats_read() {
    if (!engine_)
        return;
    const auto now = monotonic_now();
    engine_->end_frames(now);
    apply(engine_->take_decision());
    if (engine_)
        keep_watchdog(now);
}

std::chrono::milliseconds Agent::heartbeat_linger() const {
    return std::min(std::chrono::milliseconds(config_.cluster.heartbeat_ms) / 8,
                    std::chrono::milliseconds(50));
}

void Agent::set_heartbeat_linger() {
    // An eighth of a period, at most 50 ms: what a frame may wait is far inside the tolerance
    // (at least 3 periods) and the second path's quarter period (docs/convergence.md, §2a), a
    // 64-host cluster's 63 frames a period wake the agent 8 to 20 times, not 63, and what a
    // flood queues meanwhile fits the socket's buffer (HeartbeatSocket). With 64 idle hosts
    // at 100 ms a sixteenth cost 2.3-2.5 % of a core where an eighth costs 1.7 %.
    if (hb_)
        hb_->set_linger(heartbeat_linger());
}

void Agent::apply(Decision d) {
    if (!engine_)
        return;
    // Rarely changes (a peer of other timing heard or gone): then written, for the next start.
    if (const auto error = start_wait_.keep(engine_->cluster_tolerance_ms(monotonic_now()));
        !error.empty())
        log_.warn("keep the cluster's tolerance for the next start: " + error);
    if (d.maps && installed_) {
        // Buckets this host gives up: look at the connection table again right now, so that
        // connections opened since the last scan are kept (tracked here, reported dirty).
        if (gives_up(*installed_, *d.maps, config_.host.priority)) {
            // First stop recording new connections in the buckets given up: the new maps go
            // in with those buckets still looked up in the connection tables (tracked here),
            // so no connection is lost meanwhile. Then, once every program run that read the
            // old entry has ended (waited for, not guessed: a virtual CPU descheduled in the
            // middle of one holds it for milliseconds), the scan sees every connection
            // recorded there, and the release reports them all dirty: none is served by two
            // hosts.
            install(with_released_tracked(*d.maps));
            wait_out_programs();
            // If the scan changed the dirty list, the frames built before it (on both paths)
            // carry a stale one: a peer that read their release would take the buckets as
            // clean. They are not sent, and fresh ones follow within a quarter period.
            const bool stale = scan_connections_now(monotonic_now());
            if (stale)
                engine_->frames_withheld(monotonic_now());
            fold_rescan(d, engine_->take_decision(), stale);
        }
    }
    for (const auto& e : d.events) {
        // Convergence time as the engine saw it: its events carry the monotonic time of the
        // input that caused them.
        if (e.kind == EventKind::convergence_started) {
            convergence_started_ = e.at;
        } else if (e.kind == EventKind::converged) {
            ++convergences_;
            if (convergence_started_)
                last_convergence_ = e.at - *convergence_started_;
            convergence_started_.reset();
        }
        json fields = {{"host", e.host}};
        if (!e.text.empty())
            fields["detail"] = e.text;
        if (e.kind == EventKind::stalled)
            add_stall_cause(fields);
        // Something to fix: a command or this host refused, frames that may not arrive, and
        // a peer whose smaller MTU cuts this host's frames (one segment, mixed MTUs).
        if (e.kind == EventKind::command_rejected || e.kind == EventKind::refused ||
            e.kind == EventKind::frame_oversized ||
            (e.kind == EventKind::frame_budget && e.host != config_.host.priority))
            log_.warn(std::string(to_string(e.kind)) + ": " + e.text);
        else
            log_.event(to_string(e.kind), fields);
    }
    if (d.flow_seed && dp_) {
        // The engine took the cluster's seed before this host served (seed_inherited): the
        // same tables, hashed as the cluster hashes.
        try {
            const VipLayout running = tables_.layout();
            tables_ = tables_of(config_, *d.flow_seed, &running);
            dp_->maps().write_tables(tables_);
            // The established records carry buckets of the old seed: record them again.
            tracking_.start(*dp_, tables_.vips(), log_);
        } catch (const std::exception& e) {
            log_.error(e.what());
        }
    }
    if (d.maps)
        install(*d.maps);
    for (const auto& f : d.frames)
        hb_->send(f);
    if (contact_)
        for (const auto& c : d.contact)
            contact_->send(c.to, c.frame);
    // Every input may bring the engine's next deadline forward (a command, a heartbeat).
    schedule(d.next_tick);
    if (!announced_ && engine_->state() == HostState::converged) {
        // Tell switches and routers where the VIPs are, once this host serves.
        announced_ = true;
        try {
            iface_->announce();
        } catch (const std::exception& e) {
            log_.warn(e.what());
        }
    }
    // Last, after the maps that release the changed slots' buckets and after this decision's
    // frames (the switch makes frames of its own, which must follow these).
    if (d.switched)
        switch_config(monotonic_now());
}

// Of the time since the last sample (at most a period before the stall began): how long the
// loop ran (its own work), waited for a CPU (the machine's load or a CPU quota) and, the rest,
// was blocked (a pause, a slow syscall).
void Agent::add_stall_cause(json& fields) const {
    const std::optional<SchedSample> now = sched_.read();
    if (!now || !sched_mark_)
        return;
    const SchedShare share = sched_share(
        *sched_mark_, *now, static_cast<std::uint64_t>((monotonic_now() - sched_mark_at_).count()));
    fields["over_ms"] = share.over_ms;
    fields["ran_ms"] = share.ran_ms;
    fields["waited_ms"] = share.waited_ms;
}

SlotViews Agent::with_released_tracked(const SlotViews& next) const {
    SlotViews views = next;
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        for (std::size_t b = 0; b < NLB_BUCKETS; ++b)
            if ((*installed_)[s].owners[b] == config_.host.priority &&
                views[s].owners[b] != config_.host.priority)
                views[s].tracked_here.set(b);
    return views;
}

void Agent::write_rule_modes(DataplaneMaps& maps) const {
    for (std::uint32_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
        nlb_rule& rule = maps.state().rules[slot];
        rule.mode = slot < tables_.rules().size() ? tables_.rules()[slot].mode
                                                  : static_cast<std::uint8_t>(NLB_MODE_MULTIPLE);
        rule.affinity = tables_.affinity_of(slot);
    }
}

void Agent::install(const SlotViews& views) {
    nlb_state& state = dp_->maps().state();
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        if (installed_ && (*installed_)[s] == views[s])
            continue;
        auto entries = bucket_entries(views[s], config_.host.priority);
        std::memcpy(state.rules[s].bucket, entries.data(), sizeof(state.rules[s].bucket));
    }
    installed_ = std::make_shared<SlotViews>(views);
}

} // namespace nlb
