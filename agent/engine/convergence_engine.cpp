// ConvergenceEngine: construction, the timer's and the operator's inputs, the state machine
// each input runs (evaluate), and the heartbeat it sends.
#include "convergence_engine.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <utility>

#include "digest.hpp"
#include "engine_util.hpp"
#include "heartbeat_codec.hpp"
#include "probe_panic.hpp"

namespace nlb {

using detail::host_list;
using detail::in_view_state;
using detail::lowest;
using detail::serving_state;

ConvergenceEngine::ConvergenceEngine(EngineConfig config, std::uint64_t boot_nonce, Millis now)
    : config_(std::move(config)), me_(config_.host.priority),
      fingerprint_(
          rules_fingerprint(config_.rules, config_.cluster.flow_seed, config_.cluster.vlan)),
      seed_digest_(flow_seed_digest(config_.cluster.ip, config_.cluster.flow_seed)),
      auth_(config_.cluster.key, config_.cluster.rotation_key), nonce_(boot_nonce),
      released_at_(std::size_t{NLB_RULE_SLOTS} * NLB_BUCKETS, -1) {
    if (auto error = validate(config_); !error.empty())
        throw std::invalid_argument("convergence engine: " + error);
    prepare_allocation();
    for (const auto& r : config_.rules)
        modes_.push_back(r.mode);
    config_.host.rules.resize(config_.rules.size());
    next_send_ = now.count();
    started_at_ = now.count();
    born_ = now.count();
    if (!auth_.keyed()) {
        warned_unauthenticated_ = true;
        event(now.count(), EventKind::unauthenticated, me_,
              "no cluster key: heartbeats are neither authenticated nor checked");
    }
}

// ---- small helpers ---------------------------------------------------------------------

bool ConvergenceEngine::participating() const {
    return state_ == HostState::converging || state_ == HostState::converged ||
           state_ == HostState::draining;
}

bool ConvergenceEngine::serving_member() const {
    return in_view_state(state_);
}

std::uint64_t ConvergenceEngine::claim() const {
    for (const auto& o : owned_)
        if (o.any())
            return epoch_;
    return 0;
}

bool ConvergenceEngine::epoch_served() const {
    if (claim() != 0)
        return true;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (p != me_ && (epoch_members_ & host_bit(p)) && peers_.peer(p).alive &&
            peers_.peer(p).heartbeat.claim == epoch_)
            return true;
    return false;
}

std::uint64_t ConvergenceEngine::group_score() const {
    std::uint64_t score = accepted_total_ - accepted_base_;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p != me_ && peer.alive && epoch_ != 0 && peer.heartbeat.claim == epoch_)
            score += peer.heartbeat.connections;
    }
    return score;
}

std::uint8_t ConvergenceEngine::default_host() const {
    return epoch_ ? lowest(epoch_members_) : 0;
}

MemberParams ConvergenceEngine::my_params() const {
    MemberParams m;
    m.priority = me_;
    for (std::size_t r = 0; r < config_.rules.size(); ++r) {
        m.rules[r] = config_.host.rules[r];
        m.control[r] = control_[r];
        // The operator's drain or disable wins over a probe; else a probe's down is a drain.
        if (control_[r] == RuleControl::enabled && ((probe_down_ >> r) & 1)) {
            m.control[r] = RuleControl::draining;
            m.probe_down |= std::uint32_t{1} << r;
        }
    }
    m.panic_percent = config_.host.panic_percent;
    m.health = true;
    return m;
}

MemberParams ConvergenceEngine::params_of(const Heartbeat& hb) const {
    MemberParams m;
    m.priority = hb.priority;
    for (std::size_t r = 0; r < hb.rule_count && r < NLB_MAX_RULES; ++r) {
        m.rules[r] = hb.rules[r];
        m.control[r] = hb.control[r];
    }
    if (hb.has_health) {
        m.health = true;
        m.probe_down = hb.probe_down; // the decoder checked these rules say draining
        m.panic_percent = hb.panic_percent;
    }
    return m;
}

std::vector<MemberParams> ConvergenceEngine::view_members(std::uint64_t bits,
                                                          std::uint32_t& panic) const {
    std::vector<MemberParams> members;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (bits & host_bit(p))
            members.push_back(p == me_ ? my_params() : params_of(peers_.peer(p).heartbeat));
    panic = resolve_panic(members, modes_);
    return members;
}

void ConvergenceEngine::event(std::int64_t now, EventKind kind, std::uint8_t host,
                              std::string text) {
    out_.events.push_back({Millis{now}, kind, host, std::move(text)});
}

void ConvergenceEngine::set_state(std::int64_t now, HostState next, const std::string& why) {
    if (next == state_)
        return;
    event(now, EventKind::state_changed, me_,
          std::string(to_string(state_)) + " -> " + to_string(next) +
              (why.empty() ? "" : ": " + why));
    state_ = next;
    ever_converged_ |= next == HostState::converged;
    ++params_generation_; // our own view membership changes with it
    views_dirty_ = true;
    send_soon(now);
}

void ConvergenceEngine::begin_convergence(std::int64_t now, const std::string& why) {
    if (!agreeing_ && state_ != HostState::draining)
        event(now, EventKind::convergence_started, me_, why);
    if (!agreeing_ && give_up_) {
        give_up_ = false;
        ++params_generation_;
    }
    // The map served under becomes the base of the next one. Served: by this host, or by
    // another member that claims the epoch. A joiner that installed an epoch the members
    // never did took none of its buckets (they still claimed the epoch before), and its map,
    // the newest generation, would become every member's base and be fetched by all of
    // them; a member that owns nothing (weight 0, a standby) still follows the others at
    // once. Not when the base is newer: a map the cluster took for its base while this host
    // had not installed it yet (received, or its own candidate). Each change during one
    // convergence comes here again, and going back to the older map would only fetch the
    // newer one again.
    if (target_valid_ && target_ && base_digest_ != target_digest_ && epoch_served() &&
        !(base_ && base_gen_ > target_gen_))
        set_base(now, target_, target_digest_, target_gen_);
    agreeing_ = true;
    stable_ = 0;
    if (state_ == HostState::converged)
        set_state(now, HostState::converging, why);
    send_soon(now);
}

void ConvergenceEngine::send_soon(std::int64_t now) {
    // At most four frames per period, however many changes come in.
    const std::int64_t soon = std::max(now, last_send_ + period() / 4);
    next_send_ = std::min(next_send_, soon);
}

// ---- inputs ----------------------------------------------------------------------------

void ConvergenceEngine::on_tick(Millis now_ms) {
    const std::int64_t now = now_ms.count();
    observe(now);
    for (auto p : peers_.expire(now, tolerance_ms())) {
        event(now, EventKind::host_left, p,
              "host " + std::to_string(p) + " missed " +
                  std::to_string(config_.cluster.heartbeat_tolerance) + " heartbeats");
        ++params_generation_;
        update_others_dirty();
    }
    const bool unreadable_refusal =
        reason_ == RefuseReason::key_mismatch || reason_ == RefuseReason::version;
    if (state_ == HostState::refused &&
        (now - last_conflict_ > tolerance_ms() || (unreadable_refusal && had_peer_))) {
        reason_ = RefuseReason::none;
        reason_detail_.clear();
        started_at_ = now;
        if (std::exchange(refused_draining_, false)) {
            // Told to leave, it had drained or let go of every connection when it was
            // refused: it does not rejoin on its own (a VM stopped while draining rejoined,
            // serving, after its peers had counted it dead).
            event(now, EventKind::drain_complete, me_,
                  "drainstop: every connection let go when refused; stopped");
            set_state(now, HostState::stopped, "drained");
        } else {
            set_state(now, HostState::converging, "no conflicting host left");
            begin_convergence(now, "rejoining after refusal");
        }
    }
    if (adopt_until_ && now >= adopt_until_) {
        for (auto& a : adopt_)
            a.reset();
        adopt_until_ = 0;
        views_dirty_ = true;
    }
    update_held(now);
    evaluate(now);
    // Segment frames of a peer turned late: ask it for the second path's copies at once,
    // whether or not this host thinks the cluster settled. The peer decides by its own view
    // whether its copies are a backup: a peer that thinks so sends none unasked while this
    // host, which does not, expects them. (While agreeing such a heartbeat also counts toward
    // the agreement's stability, as one sent early for any other news does: agreement itself
    // still needs every member to report the same.)
    if (want_mask(now) & ~wanted_)
        send_soon(now);
    if (now >= next_send_)
        send(now);
    if (views_dirty_)
        rebuild_views(now);
}

bool ConvergenceEngine::on_command(const Command& command, Millis now_ms) {
    const std::int64_t now = now_ms.count();
    observe(now);
    auto reject = [&](const std::string& why) {
        event(now, EventKind::command_rejected, me_, why);
        return false;
    };
    if (state_ == HostState::suspended && command.kind != CommandKind::resume)
        return reject("suspended: only resume is accepted");
    switch (command.kind) {
    case CommandKind::start:
        if (state_ == HostState::converging || state_ == HostState::converged)
            return true;
        refused_draining_ = false;
        reason_ = RefuseReason::none;
        started_at_ = now;
        set_state(now, HostState::converging, "start");
        begin_convergence(now, "start");
        break;
    case CommandKind::stop:
        release_all(now, false);
        forget_maps(now);
        agreeing_ = false;
        set_state(now, HostState::stopped, "stop");
        break;
    case CommandKind::drainstop:
        if (state_ != HostState::converging && state_ != HostState::converged)
            return reject(std::string("drainstop: host is ") + to_string(state_));
        set_state(now, HostState::draining, "drainstop");
        begin_convergence(now, "drainstop");
        break;
    case CommandKind::suspend:
        release_all(now, false);
        forget_maps(now);
        agreeing_ = false;
        set_state(now, HostState::suspended, "suspend");
        break;
    case CommandKind::resume:
        if (state_ != HostState::suspended)
            return reject("resume: host is not suspended");
        set_state(now, HostState::stopped, "resume");
        break;
    case CommandKind::rule_enable:
    case CommandKind::rule_disable:
    case CommandKind::rule_drain: {
        if (command.rule >= static_cast<int>(config_.rules.size()) || command.rule < -1)
            return reject("no port rule " + std::to_string(command.rule));
        const auto control = command.kind == CommandKind::rule_enable    ? RuleControl::enabled
                             : command.kind == CommandKind::rule_disable ? RuleControl::disabled
                                                                         : RuleControl::draining;
        for (std::size_t r = 0; r < config_.rules.size(); ++r) {
            if (command.rule != -1 && static_cast<int>(r) != command.rule)
                continue;
            control_[r] = control;
            if (control == RuleControl::disabled)
                release_slot(now, r);
        }
        ++params_generation_;
        break;
    }
    }
    update_held(now);
    evaluate(now);
    return true;
}

bool ConvergenceEngine::set_host_rules(const std::vector<HostRuleParams>& rules, Millis now_ms) {
    EngineConfig next = config_;
    next.host.rules = rules;
    if (rules.size() != config_.rules.size() || !validate(next).empty())
        return false;
    if (rules == config_.host.rules)
        return true;
    const std::int64_t now = now_ms.count();
    observe(now);
    config_.host.rules = rules;
    ++params_generation_;
    update_held(now);
    evaluate(now);
    return true;
}

void ConvergenceEngine::set_contact_peers(std::vector<ContactAddress> peers) {
    config_.host.peers = std::move(peers);
}

void ConvergenceEngine::set_loads(std::uint32_t rules,
                                  const std::array<std::uint32_t, NLB_MAX_RULES>& loads) {
    const std::uint32_t mask = config_.rules.size() >= 32
                                   ? ~std::uint32_t{0}
                                   : (std::uint32_t{1} << config_.rules.size()) - 1;
    load_rules_ = rules & mask;
    loads_ = loads;
}

std::vector<std::pair<std::uint8_t, std::uint32_t>>
ConvergenceEngine::loads_of(std::size_t rule) const {
    std::vector<std::pair<std::uint8_t, std::uint32_t>> out;
    if (rule >= NLB_MAX_RULES)
        return out;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == me_) {
            if (((load_rules_ >> rule) & 1) && my_params().control[rule] == RuleControl::enabled)
                out.emplace_back(p, loads_[rule]);
            continue;
        }
        // Enabled there too: an older sender (or one mid-drain) may still publish one.
        const Peer& peer = peers_.peer(p);
        if (peer.alive && ((view_ >> (p - 1)) & 1) && ((peer.heartbeat.load_rules >> rule) & 1) &&
            peer.heartbeat.control[rule] == RuleControl::enabled)
            out.emplace_back(p, peer.heartbeat.loads[rule]);
    }
    return out;
}

void ConvergenceEngine::set_probe_down(std::uint32_t rules, Millis now_ms) {
    const std::size_t n = config_.rules.size();
    rules &= n >= 32 ? ~std::uint32_t{0} : (std::uint32_t{1} << n) - 1;
    if (rules == probe_down_)
        return;
    const std::int64_t now = now_ms.count();
    observe(now);
    probe_down_ = rules;
    ++params_generation_; // like a weight change: the cluster reconverges
    update_held(now);
    evaluate(now);
}

bool ConvergenceEngine::on_connection_scan(const LiveBuckets& live, std::uint64_t accepted_total,
                                           Millis now_ms) {
    const std::int64_t now = now_ms.count();
    observe(now);
    live_ = live;
    on_accepted_total(accepted_total);
    const auto held_before = held_;
    update_held(now);
    evaluate(now);
    return held_ != held_before;
}

void ConvergenceEngine::frames_withheld(Millis now_ms) {
    const std::int64_t now = now_ms.count();
    observe(now);
    send_soon(now);
    // The frame withheld may be the one that showed a take (the maps that make it are
    // installed all the same): a fresh one goes with them.
    if (claim_sent_ != 0)
        announce_ = true;
}

void ConvergenceEngine::on_accepted_total(std::uint64_t accepted_total) {
    accepted_total_ = std::max(accepted_total_, accepted_total);
}

Decision ConvergenceEngine::take_decision() {
    if (holding_) // a batch its reader left open: decided at its last frame's time
        end_frames(Millis{std::max<std::int64_t>(last_input_, 0)});
    if (announce_) { // not a period's heartbeat: it counts for no stability, nor delays one
        const std::int64_t now = std::max<std::int64_t>(last_input_, 0);
        const std::int64_t due = next_send_;
        emit(now);
        if (due > now)
            next_send_ = std::min(next_send_, due);
    }
    if (views_dirty_)
        rebuild_views(last_send_ > 0 ? last_send_ : 0);
    Decision d = std::move(out_);
    out_ = Decision{};
    d.state = state_;
    // At least every half period, so that a gap between inputs means a stall (observe).
    d.next_tick = Millis{std::min({next_send_, peers_.next_expiry(tolerance_ms()),
                                   std::max<std::int64_t>(last_input_, 0) + period() / 2,
                                   next_late(), grace_end(), partition_deadline(),
                                   (link_down_ || link_held_) && !recovering_ &&
                                           participating()
                                       ? link_bound_.until.count()
                                       : std::numeric_limits<std::int64_t>::max()})};
    return d;
}

// ---- the state machine -----------------------------------------------------------------

void ConvergenceEngine::evaluate(std::int64_t now) {
    recompute_cohort(now);
    if (maybe_switch(now))
        recompute_cohort(now); // whose configuration is this host's changed
    // Frames of this cluster it cannot read hold back a host that never had a peer prove
    // contact: it may be the one with the wrong key or version, and must not serve alone.
    if (participating() && !had_peer_ && now - last_unreadable_ <= tolerance_ms()) {
        refuse(now, unreadable_reason_, me_,
               unreadable_reason_ == RefuseReason::version
                   ? "frames of this cluster in a version this host cannot read"
                   : "frames of this cluster that fail authentication: check cluster.key_file");
        return;
    }
    check_groups(now);
    check_partition(now);
    recompute_view(now);
    recompute_view(now); // a convergence it started may have moved our base to our map
    follow_base(now);
    recompute_view(now); // with the base it may have switched to
    if (state_ == HostState::converged) {
        // An inconsistent heartbeat from a member (it sees another membership or other
        // parameters) starts a convergence.
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            if (p == me_ || !(view_ & host_bit(p)))
                continue;
            const auto& hb = peers_.peer(p).heartbeat;
            if (hb.view_digest != view_digest_) {
                begin_convergence(now, "host " + std::to_string(p) + " sees another cluster");
                break;
            }
        }
    }
    check_map_agreement(now);
    // Every member reports this view: one of them may install it before this host's own
    // heartbeat checks, and take its map for a base at the next change.
    if (agreeing_ && participating() && (view_digest_ != epoch_ || !target_) &&
        candidate_epoch_ != view_digest_ && agreement(now))
        candidate_map();
    try_take(now);
    if (state_ == HostState::draining && !agreeing_ && claim() == 0) {
        bool holding = false;
        for (const auto& h : held_)
            holding = holding || h.any();
        if (!holding) {
            event(now, EventKind::drain_complete, me_, "drainstop: no connection left");
            set_state(now, HostState::stopped, "drained");
        }
    }
}

void ConvergenceEngine::send(std::int64_t now) {
    if (agreeing_ && participating()) {
        stable_ = agreement(now) ? stable_ + 1 : 0;
        // A member's last frame may be older than this view: the same view as now, reported
        // before this host's view went elsewhere and back (a peer died and came back). What
        // that member installed since, with its frames lost, is not known here; it may even
        // have taken buckets under the view between. Install only on frames of every member
        // heard since the view became this one: a member that goes silent then blocks the
        // install until it is dead, and a fresh frame shows what it claims.
        if (stable_ >= kStablePeriods && !members_heard_since(view_since_))
            stable_ = kStablePeriods - 1;
        if (stable_ == 1 && (view_digest_ != epoch_ || !target_))
            candidate_map(); // before the others install it and take it for a base
        if (stable_ >= kStablePeriods)
            install(now);
    }
    emit(now);
}

void ConvergenceEngine::emit(std::int64_t now) {
    Heartbeat hb;
    hb.flags = auth_.keyed() ? Heartbeat::kFlagAuthenticated : 0;
    // Down (on_link): with the carrier lost nothing leaves; on a link that fails one way (it
    // hears nobody, no client reaches it) its frames would keep it in its peers' views, or,
    // once it formed no epoch, keep them from taking its buckets (a host that may serve,
    // proven or not, blocks every take until a tolerance after its frame). Flagged, they
    // count only as heard: to its peers it is what a host whose link is down is, and after a
    // moment when no host heard any other (the whole segment dark), each hears the others'
    // again and comes back up (silent, every host stayed down until a client's frame).
    if (link_down_)
        hb.flags |= Heartbeat::kFlagLinkDown;
    if (frozen_)
        hb.flags |= Heartbeat::kFlagScoreFrozen;
    if (pending_take_)
        hb.flags |= Heartbeat::kFlagTaking;
    if (yielded_epoch_ != 0 && reported_claim() == 0)
        hb.flags |= Heartbeat::kFlagYielded;
    if (young(now))
        hb.flags |= Heartbeat::kFlagYoung;
    hb.cluster_ip = config_.cluster.ip;
    hb.priority = me_;
    hb.state = state_;
    hb.reason = reason_;
    hb.rule_count = static_cast<std::uint8_t>(config_.rules.size());
    hb.nonce = nonce_;
    hb.sequence = ++sequence_;
    confirmed_.sent(sequence_, now);
    hb.fingerprint = fingerprint_;
    hb.view = view_;
    hb.view_digest = view_digest_;
    hb.claim = reported_claim();
    hb.claim_members = hb.claim ? epoch_members_ : 0;
    hb.outside_owners = outside_owners();
    hb.grace_owners = grace_owners(now, hb.grace_left_ms);
    hb.map_digest = target_digest_;
    hb.connections = accepted_total_ - accepted_base_;
    hb.score = frozen_ ? frozen_score_ : group_score();
    const auto params = my_params();
    hb.rules = params.rules;
    hb.control = params.control;
    hb.has_health = true;
    hb.probe_down = params.probe_down;
    hb.panic_percent = params.panic_percent;
    // A rule this host does not take new connections of (drained, disabled, held down by a
    // probe) has no cost to compare: its residual load would pull the others' weights down.
    hb.load_rules = 0;
    for (std::size_t r = 0; r < config_.rules.size() && r < NLB_MAX_RULES; ++r)
        if (((load_rules_ >> r) & 1) && params.control[r] == RuleControl::enabled)
            hb.load_rules |= std::uint32_t{1} << r;
    hb.loads = loads_;
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        if (held_[s].any())
            hb.dirty.push_back({static_cast<std::uint8_t>(s), held_[s]});
    hb.staged = staged_digest();
    hb.switched_from = switched_from_;
    hb.base_digest = base_digest_;
    hb.base_generation = base_digest_ ? base_gen_ : 0;
    hb.base_flags = give_up_ ? Heartbeat::kBaseGiveUp : 0;
    fill_contact(hb, now);
    wanted_ = hb.want;
    hb.mtu = mtu_ < kHeartbeatMaxSize ? static_cast<std::uint16_t>(mtu_) : 0;
    const FrameBudget budget = frame_budget(Millis(now));
    auto frame = encode_heartbeat(hb, budget.bytes);
    note_frame_budget(now, budget, frame.size());
    auth_.sign(frame);
    send_second_path(frame, hb.want, now);
    out_.frames.push_back(std::move(frame));
    claim_sent_ = hb.claim;
    announce_ = false;
    ++counters_.sent;
    send_chunks();
    last_send_ = now;
    const bool fast = agreeing_ || pending_take_ || frozen_;
    next_send_ = now + (fast ? period() / 2 : period());
}

// ---- base map and map transfer ---------------------------------------------------------

} // namespace nlb
