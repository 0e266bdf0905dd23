#include "convergence_engine.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "digest.hpp"
#include "heartbeat_codec.hpp"

namespace nlb {
namespace {

bool in_view_state(HostState s) {
    return s == HostState::converging || s == HostState::converged;
}

bool serving_state(HostState s) {
    return s == HostState::converged || s == HostState::draining;
}

std::uint8_t lowest(std::uint64_t bits) {
    return bits ? static_cast<std::uint8_t>(__builtin_ctzll(bits) + 1) : 0;
}

std::string host_list(std::uint64_t bits) {
    std::string s;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (bits & host_bit(p))
            s += (s.empty() ? "" : ",") + std::to_string(p);
    return "[" + s + "]";
}

} // namespace

const char* to_string(EventKind kind) {
    switch (kind) {
    case EventKind::state_changed:
        return "state_changed";
    case EventKind::host_joined:
        return "host_joined";
    case EventKind::host_left:
        return "host_left";
    case EventKind::host_changed:
        return "host_changed";
    case EventKind::convergence_started:
        return "convergence_started";
    case EventKind::converged:
        return "converged";
    case EventKind::host_refused:
        return "host_refused";
    case EventKind::refused:
        return "refused";
    case EventKind::partition_detected:
        return "partition_detected";
    case EventKind::partition_yield:
        return "partition_yield";
    case EventKind::unauthenticated:
        return "unauthenticated";
    case EventKind::duplicate_priority:
        return "duplicate_priority";
    case EventKind::drain_complete:
        return "drain_complete";
    case EventKind::command_rejected:
        return "command_rejected";
    case EventKind::map_received:
        return "map_received";
    case EventKind::map_fallback:
        return "map_fallback";
    }
    return "unknown";
}

ConvergenceEngine::ConvergenceEngine(EngineConfig config, std::uint64_t boot_nonce, Millis now)
    : config_(std::move(config)), me_(config_.host.priority),
      fingerprint_(rules_fingerprint(config_.rules)), auth_(config_.cluster.key),
      nonce_(boot_nonce), released_at_(std::size_t{NLB_RULE_SLOTS} * NLB_BUCKETS, -1) {
    if (auto error = validate(config_); !error.empty())
        throw std::invalid_argument("convergence engine: " + error);
    for (const auto& r : config_.rules)
        modes_.push_back(r.mode);
    config_.host.rules.resize(config_.rules.size());
    next_send_ = now.count();
    started_at_ = now.count();
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
    }
    return m;
}

MemberParams ConvergenceEngine::params_of(const Heartbeat& hb) const {
    MemberParams m;
    m.priority = hb.priority;
    for (std::size_t r = 0; r < hb.rule_count && r < NLB_MAX_RULES; ++r) {
        m.rules[r] = hb.rules[r];
        m.control[r] = hb.control[r];
    }
    return m;
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
    // The map served under becomes the base of the next one.
    if (target_valid_ && target_ && base_digest_ != target_digest_)
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

void ConvergenceEngine::count_undecodable(DecodeError error) {
    if (error == DecodeError::bad_version)
        ++counters_.bad_version;
    else
        ++counters_.malformed;
}

bool ConvergenceEngine::admit(std::span<const std::uint8_t> frame, std::size_t signed_length,
                              std::uint16_t flags, std::uint32_t cluster_ip, std::uint8_t priority,
                              std::uint64_t nonce) {
    if (cluster_ip != config_.cluster.ip) {
        ++counters_.other_cluster;
        return false;
    }
    if (auth_.keyed()) {
        if (!(flags & Heartbeat::kFlagAuthenticated)) {
            ++counters_.unauthenticated;
            return false;
        }
        if (!auth_.verify(frame, signed_length)) {
            ++counters_.bad_mac;
            return false;
        }
    }
    if (priority == me_ && nonce == nonce_) {
        ++counters_.own;
        return false;
    }
    return true;
}

void ConvergenceEngine::on_heartbeat(std::span<const std::uint8_t> frame, Millis now_ms) {
    const std::int64_t now = now_ms.count();
    ++counters_.received;
    if (is_map_chunk(frame)) {
        on_map_chunk(frame, now);
        return;
    }
    const auto decoded = decode_heartbeat(frame);
    if (!decoded.heartbeat) {
        count_undecodable(decoded.error);
        return;
    }
    const Heartbeat& hb = *decoded.heartbeat;
    if (!admit(frame, decoded.length, hb.flags, hb.cluster_ip, hb.priority, hb.nonce))
        return;
    if (replay_.check(hb.priority, hb.nonce, hb.sequence) == ReplayGuard::Verdict::replay) {
        ++counters_.replayed;
        return;
    }
    replay_.accept(hb.priority, hb.nonce, hb.sequence);
    ++counters_.accepted;
    if (hb.priority == me_) {
        ++counters_.duplicate_priority;
        handle_priority_clash(hb, now);
        evaluate(now);
        return;
    }
    const auto change = peers_.accept(hb, now);
    if (change.result == Membership::Accept::duplicate) {
        ++counters_.duplicate_priority;
        event(now, EventKind::duplicate_priority, hb.priority,
              "a second host uses priority " + std::to_string(hb.priority) + ": ignored");
        return;
    }
    if (change.result == Membership::Accept::new_host) {
        refused_logged_ &= ~host_bit(hb.priority);
        event(now, EventKind::host_joined, hb.priority,
              "host " + std::to_string(hb.priority) + " heard (" + to_string(hb.state) + ")");
    } else if (change.state_changed) {
        event(now, EventKind::host_changed, hb.priority,
              "host " + std::to_string(hb.priority) + " is " + to_string(hb.state));
    }
    if (change.params_changed)
        ++params_generation_;
    if (change.dirty_changed)
        update_others_dirty();
    evaluate(now);
    // The frame that completes agreement starts the count of stable periods now rather than
    // at the next half-period send: failover must fit in tolerance + 2 periods.
    if (agreeing_ && participating() && stable_ == 0 && agreement(now))
        send_soon(now);
    // A member waiting for our base gets its chunks with our next frame, not a period later.
    if (chosen_ != 0 && base_digest_ == chosen_ && (view_ & host_bit(hb.priority)) &&
        member_lacks_base(peers_.peer(hb.priority).heartbeat))
        send_soon(now);
}

void ConvergenceEngine::on_tick(Millis now_ms) {
    const std::int64_t now = now_ms.count();
    for (auto p : peers_.expire(now, tolerance_ms())) {
        event(now, EventKind::host_left, p,
              "host " + std::to_string(p) + " missed " +
                  std::to_string(config_.cluster.heartbeat_tolerance) + " heartbeats");
        ++params_generation_;
        update_others_dirty();
    }
    if (state_ == HostState::refused && now - last_conflict_ > tolerance_ms()) {
        reason_ = RefuseReason::none;
        started_at_ = now;
        set_state(now, HostState::converging, "no conflicting host left");
        begin_convergence(now, "rejoining after refusal");
    }
    if (adopt_until_ && now >= adopt_until_) {
        for (auto& a : adopt_)
            a.reset();
        adopt_until_ = 0;
        views_dirty_ = true;
    }
    update_held(now);
    evaluate(now);
    if (now >= next_send_)
        send(now);
    if (views_dirty_)
        rebuild_views(now);
}

bool ConvergenceEngine::on_command(const Command& command, Millis now_ms) {
    const std::int64_t now = now_ms.count();
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
    config_.host.rules = rules;
    ++params_generation_;
    update_held(now);
    evaluate(now);
    return true;
}

void ConvergenceEngine::on_connection_scan(const LiveBuckets& live, std::uint64_t accepted_total,
                                           Millis now_ms) {
    const std::int64_t now = now_ms.count();
    live_ = live;
    accepted_total_ = std::max(accepted_total_, accepted_total);
    update_held(now);
    evaluate(now);
}

Decision ConvergenceEngine::take_decision() {
    if (views_dirty_)
        rebuild_views(last_send_ > 0 ? last_send_ : 0);
    Decision d = std::move(out_);
    out_ = Decision{};
    d.state = state_;
    d.next_tick = Millis{std::min(next_send_, peers_.next_expiry(tolerance_ms()))};
    return d;
}

// ---- the state machine -----------------------------------------------------------------

void ConvergenceEngine::evaluate(std::int64_t now) {
    check_rules_conflicts(now);
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

void ConvergenceEngine::check_rules_conflicts(std::int64_t now) {
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive || peer.heartbeat.fingerprint == fingerprint_)
            continue;
        const auto& hb = peer.heartbeat;
        if (state_ == HostState::refused && serving_state(hb.state))
            last_conflict_ = now;
        // A host that serves nothing yet defers to a serving one with other rules.
        if (serving_state(hb.state) && state_ == HostState::converging && claim() == 0) {
            refuse(now, RefuseReason::rules_differ, p);
            return;
        }
        if (hb.state != HostState::refused && participating() && !(refused_logged_ & host_bit(p))) {
            refused_logged_ |= host_bit(p);
            event(now, EventKind::host_refused, p,
                  "host " + std::to_string(p) + " refused: its port rules differ");
        }
    }
}

void ConvergenceEngine::handle_priority_clash(const Heartbeat& hb, std::int64_t now) {
    last_conflict_ = now;
    if (!participating() || hb.state == HostState::refused || hb.state == HostState::stopped ||
        hb.state == HostState::suspended)
        return;
    const bool they_serve = serving_state(hb.state);
    const bool i_serve = serving_state(state_) && claim() != 0;
    bool i_lose;
    if (they_serve != i_serve)
        i_lose = they_serve;
    else
        i_lose = nonce_ > hb.nonce; // both or neither serve: the same answer on both sides
    if (i_lose)
        refuse(now, RefuseReason::priority_taken, me_);
    else if (!(refused_logged_ & host_bit(me_))) {
        refused_logged_ |= host_bit(me_);
        event(now, EventKind::host_refused, me_,
              "another host with priority " + std::to_string(me_) + " refused");
    }
}

void ConvergenceEngine::refuse(std::int64_t now, RefuseReason reason, std::uint8_t because_of) {
    release_all(now, false);
    forget_maps(now);
    agreeing_ = false;
    reason_ = reason;
    last_conflict_ = now;
    event(now, EventKind::refused, me_,
          std::string(to_string(reason)) + " (host " + std::to_string(because_of) + ")");
    set_state(now, HostState::refused, to_string(reason));
}

void ConvergenceEngine::check_partition(std::int64_t now) {
    if (claim() == 0) {
        frozen_ = false;
        return;
    }
    // Conflicting groups: live hosts owning buckets under an epoch neither side took part in.
    std::vector<std::uint64_t> foreign;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive)
            continue;
        const auto& hb = peer.heartbeat;
        if (hb.claim == 0 || hb.claim == epoch_ || (epoch_members_ & host_bit(p)) ||
            (hb.claim_members & host_bit(me_)))
            continue;
        if (std::find(foreign.begin(), foreign.end(), hb.claim) == foreign.end())
            foreign.push_back(hb.claim);
    }
    if (foreign.empty())
        return;
    if (!frozen_) {
        frozen_ = true;
        frozen_score_ = group_score();
        event(now, EventKind::partition_detected, me_,
              "another converged group met ours: " + std::to_string(foreign.size()) +
                  " group(s); our score " + std::to_string(frozen_score_));
        next_send_ = now; // the other group decides on this frame: no rate limit
    }
    // Each group's score is the frozen one its lowest live host reports, so every host of
    // both groups compares the same two numbers and exactly one group yields.
    auto leader_score = [&](std::uint64_t epoch, bool& known) -> std::uint64_t {
        std::uint8_t leader = 0;
        if (epoch == epoch_)
            leader = me_;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
            const auto& peer = peers_.peer(p);
            if (p != me_ && peer.alive && peer.heartbeat.claim == epoch && (!leader || p < leader))
                leader = p;
        }
        if (leader == me_) {
            known = true;
            return frozen_score_;
        }
        const auto& hb = peers_.peer(leader).heartbeat;
        known = leader != 0 && (hb.flags & Heartbeat::kFlagScoreFrozen);
        return hb.score;
    };
    bool mine_known = false;
    const auto mine = leader_score(epoch_, mine_known);
    if (!mine_known)
        return;
    for (auto other : foreign) {
        bool known = false;
        const auto theirs = leader_score(other, known);
        if (!known)
            continue;
        if (theirs > mine || (theirs == mine && other > epoch_)) {
            event(now, EventKind::partition_yield, me_,
                  "partition heal: our group accepted " + std::to_string(mine) +
                      " connections, the other " + std::to_string(theirs) +
                      ": letting go of our buckets");
            release_all(now, true);
            frozen_ = false;
            pending_take_ = false;
            if (state_ == HostState::converged)
                set_state(now, HostState::converging, "partition heal");
            begin_convergence(now, "partition heal");
            return;
        }
    }
}

void ConvergenceEngine::recompute_view(std::int64_t now) {
    std::uint64_t bits = 0;
    if (serving_member())
        bits |= host_bit(me_);
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p != me_ && peer.alive && peer.heartbeat.fingerprint == fingerprint_ &&
            in_view_state(peer.heartbeat.state))
            bits |= host_bit(p);
    }
    if (bits == view_key_members_ && params_generation_ == view_key_generation_)
        return;
    view_key_members_ = bits;
    view_key_generation_ = params_generation_;
    choose_base(bits);
    DigestBuilder d;
    d.u32(0x6e6c6276).u64(fingerprint_).u64(bits);
    // The base enters the epoch (one epoch, one map); without one the digest is 1.0's.
    if (chosen_ != 0 || chosen_gen_ != 0)
        d.u64(chosen_).u32(chosen_gen_);
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (!(bits & host_bit(p)))
            continue;
        const MemberParams m = p == me_ ? my_params() : params_of(peers_.peer(p).heartbeat);
        d.u8(p);
        for (std::size_t r = 0; r < config_.rules.size(); ++r)
            d.u8(m.rules[r].load_weight)
                .u8(m.rules[r].handling_priority)
                .u8(static_cast<std::uint8_t>(m.control[r]));
    }
    const auto digest = d.finish();
    if (digest == view_digest_ && bits == view_)
        return;
    const auto before = view_;
    view_ = bits;
    view_digest_ = digest;
    if (participating()) {
        std::string why = "membership " + host_list(before) + " -> " + host_list(bits);
        if (before == bits)
            why = "host parameters changed";
        begin_convergence(now, why);
    }
}

bool ConvergenceEngine::agreement(std::int64_t now) const {
    if (view_ == host_bit(me_) && now - started_at_ < tolerance_ms())
        return false; // alone: first give everyone a chance to be heard
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == me_ || !(view_ & host_bit(p)))
            continue;
        const auto& hb = peers_.peer(p).heartbeat;
        if (hb.view != view_ || hb.view_digest != view_digest_)
            return false;
        if (chosen_ != 0 && hb.base_digest != chosen_)
            return false;
    }
    return chosen_ == 0 || base_digest_ == chosen_;
}

void ConvergenceEngine::install(std::int64_t now) {
    agreeing_ = false;
    stable_ = 0;
    if (view_digest_ != epoch_ || !target_) {
        std::vector<MemberParams> members;
        for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
            if (view_ & host_bit(p))
                members.push_back(p == me_ ? my_params() : params_of(peers_.peer(p).heartbeat));
        // agreement() saw base_ == chosen_ when chosen_ != 0.
        const ClusterMap* from = chosen_ != 0 && base_digest_ == chosen_ ? base_.get() : nullptr;
        std::shared_ptr<const ClusterMap> map = reallocate(from, modes_, members);
        prev_ = target_;
        prev_epoch_ = epoch_;
        prev_digest_ = target_digest_;
        target_ = std::move(map);
        epoch_ = view_digest_;
        epoch_members_ = view_;
        target_digest_ = target_->digest();
        target_gen_ = next_gen_;
    }
    target_valid_ = true;
    // Release at once what the new share lacks.
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        if (owned_[s].none())
            continue;
        const auto& slot = target_->slots[s];
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (owned_[s][b] && slot[b] != me_) {
                owned_[s].reset(b);
                released_at_[s * NLB_BUCKETS + b] = now;
            }
    }
    to_take_.clear();
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        const auto& slot = target_->slots[s];
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
            if (slot[b] == me_ && !owned_[s][b])
                to_take_.push_back(static_cast<std::uint32_t>(s * NLB_BUCKETS + b));
    }
    accepted_base_ = accepted_total_;
    frozen_ = false;
    pending_take_ = !to_take_.empty();
    views_dirty_ = true;
    if (state_ == HostState::converging) {
        set_state(now, HostState::converged, "");
        event(now, EventKind::converged, me_,
              "members " + host_list(epoch_members_) + ", default host " +
                  std::to_string(default_host()));
    }
    update_held(now);
    try_take(now);
    send_soon(now);
}

void ConvergenceEngine::try_take(std::int64_t now) {
    if (!pending_take_ || !target_ || !serving_member())
        return;
    // Who may still own buckets we are to take: hosts claiming our previous epoch own only
    // their share of it; a host claiming anything else (not 0, not ours) blocks everything.
    std::uint64_t blockers = 0;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive)
            continue;
        const auto c = peer.heartbeat.claim;
        if (c == 0 || c == epoch_)
            continue;
        if (prev_ && c == prev_epoch_)
            blockers |= host_bit(p);
        else
            return;
    }
    bool took = false;
    std::size_t keep = 0;
    for (const auto entry : to_take_) {
        const std::size_t s = entry / NLB_BUCKETS;
        const std::uint32_t b = entry % NLB_BUCKETS;
        const bool disabled = s < config_.rules.size() && control_[s] == RuleControl::disabled;
        const std::uint8_t before = prev_ ? prev_->slots[s][b] : 0;
        if (disabled || owned_[s][b] ||
            (before != 0 && before != me_ && (blockers & host_bit(before)))) {
            if (!owned_[s][b])
                to_take_[keep++] = entry;
            continue;
        }
        owned_[s].set(b);
        adopt_[s].set(b);
        released_at_[entry] = -1;
        took = true;
    }
    to_take_.resize(keep);
    if (took) {
        adopt_until_ = now + tolerance_ms();
        views_dirty_ = true;
        update_held(now);
        send_soon(now);
    }
    pending_take_ = !to_take_.empty();
}

void ConvergenceEngine::release_slot(std::int64_t now, std::size_t s) {
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        if (owned_[s][b])
            released_at_[s * NLB_BUCKETS + b] = now;
    owned_[s].reset();
    adopt_[s].reset();
    views_dirty_ = true;
}

void ConvergenceEngine::release_all(std::int64_t now, bool keep_connections) {
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        release_slot(now, s);
    if (!keep_connections)
        live_ = LiveBuckets{};
    pending_take_ = false;
    update_held(now);
}

void ConvergenceEngine::update_held(std::int64_t now) {
    const bool keeps = participating();
    const std::int64_t cleanup = std::int64_t{config_.cluster.cleanup_delay_s} * 1000;
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        BucketBits held;
        const bool disabled = s < config_.rules.size() && control_[s] == RuleControl::disabled;
        if (keeps && !disabled && live_.slots[s].any()) {
            const BucketBits candidates = live_.slots[s] & ~owned_[s];
            for (std::uint32_t b = 0; b < NLB_BUCKETS && candidates.any(); ++b) {
                if (!candidates[b])
                    continue;
                auto& since = released_at_[s * NLB_BUCKETS + b];
                if (since < 0)
                    since = now;
                if (now - since < cleanup)
                    held.set(b);
            }
        }
        if (held != held_[s]) {
            held_[s] = held;
            views_dirty_ = true;
        }
    }
}

void ConvergenceEngine::update_others_dirty() {
    std::array<BucketBits, NLB_RULE_SLOTS> dirty{};
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive)
            continue;
        for (const auto& d : peer.heartbeat.dirty)
            dirty[d.slot] |= d.buckets;
    }
    if (dirty != others_dirty_) {
        others_dirty_ = dirty;
        views_dirty_ = true;
    }
}

void ConvergenceEngine::rebuild_views(std::int64_t) {
    views_dirty_ = false;
    auto views = std::make_shared<SlotViews>();
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        auto& v = (*views)[s];
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b) {
            std::uint8_t owner = 0;
            if (owned_[s][b])
                owner = me_;
            else if (target_ && target_->slots[s][b] != me_)
                owner = target_->slots[s][b];
            else if (prev_ && prev_->slots[s][b] != me_)
                owner = prev_->slots[s][b];
            v.owners[b] = owner;
        }
        v.dirty_elsewhere = owned_[s] & others_dirty_[s];
        v.tracked_here = held_[s];
        v.adopt = adopt_[s] & ~others_dirty_[s];
    }
    if (!views_ || *views_ != *views) {
        views_ = views;
        out_.maps = views_;
    }
}

void ConvergenceEngine::send(std::int64_t now) {
    if (agreeing_ && participating()) {
        stable_ = agreement(now) ? stable_ + 1 : 0;
        if (stable_ >= kStablePeriods)
            install(now);
    }
    Heartbeat hb;
    hb.flags = auth_.keyed() ? Heartbeat::kFlagAuthenticated : 0;
    if (frozen_)
        hb.flags |= Heartbeat::kFlagScoreFrozen;
    hb.cluster_ip = config_.cluster.ip;
    hb.priority = me_;
    hb.state = state_;
    hb.reason = reason_;
    hb.rule_count = static_cast<std::uint8_t>(config_.rules.size());
    hb.nonce = nonce_;
    hb.sequence = ++sequence_;
    hb.fingerprint = fingerprint_;
    hb.view = view_;
    hb.view_digest = view_digest_;
    hb.claim = claim();
    hb.claim_members = hb.claim ? epoch_members_ : 0;
    hb.map_digest = target_digest_;
    hb.connections = accepted_total_ - accepted_base_;
    hb.score = frozen_ ? frozen_score_ : group_score();
    const auto params = my_params();
    hb.rules = params.rules;
    hb.control = params.control;
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        if (held_[s].any())
            hb.dirty.push_back({static_cast<std::uint8_t>(s), held_[s]});
    hb.base_digest = base_digest_;
    hb.base_generation = base_digest_ ? base_gen_ : 0;
    hb.base_flags = give_up_ ? Heartbeat::kBaseGiveUp : 0;
    auto frame = encode_heartbeat(hb);
    auth_.sign(frame);
    out_.frames.push_back(std::move(frame));
    ++counters_.sent;
    send_chunks();
    last_send_ = now;
    const bool fast = agreeing_ || pending_take_ || frozen_;
    next_send_ = now + (fast ? period() / 2 : period());
}

// ---- base map and map transfer ---------------------------------------------------------

void ConvergenceEngine::choose_base(std::uint64_t members) {
    // Highest generation (the newest map), then most holders, then the lowest holder: every
    // member that sees the same heartbeats picks the same, and the digest enters the epoch.
    // Holders count by digest (one map, one digest), with the highest generation reported.
    struct Candidate {
        std::uint64_t digest;
        std::uint32_t gen;
        int count;
    };
    std::vector<Candidate> seen; // in order of their lowest holder
    std::uint32_t max_gen = 0;
    bool give_up = false, legacy = false;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (!(members & host_bit(p)))
            continue;
        std::uint64_t digest = base_digest_;
        std::uint32_t gen = base_digest_ ? base_gen_ : 0;
        if (p == me_) {
            give_up = give_up || give_up_;
        } else {
            const auto& hb = peers_.peer(p).heartbeat;
            digest = hb.base_digest;
            gen = hb.base_generation;
            give_up = give_up || (hb.base_flags & Heartbeat::kBaseGiveUp);
            legacy = legacy || hb.version_minor == 0;
        }
        max_gen = std::max(max_gen, gen);
        if (digest == 0)
            continue;
        auto it = std::find_if(seen.begin(), seen.end(),
                               [&](const Candidate& c) { return c.digest == digest; });
        if (it == seen.end())
            seen.push_back({digest, gen, 1});
        else {
            it->gen = std::max(it->gen, gen);
            ++it->count;
        }
    }
    const Candidate* best = nullptr;
    for (const auto& c : seen) // ties keep the earlier, i.e. the lower holder
        if (!best || c.gen > best->gen || (c.gen == best->gen && c.count > best->count))
            best = &c;
    // The next map's generation is above every one reported, whichever base it comes from.
    next_gen_ = max_gen + 1;
    if (legacy) {
        // A 1.0 member knows no base and computes allocate() with 1.0's view digest: the
        // whole cluster does, until every member runs 1.1 (a rolling upgrade converges at
        // each step).
        chosen_ = 0;
        chosen_gen_ = 0;
    } else if (give_up || !best) {
        chosen_ = 0;
        chosen_gen_ = max_gen;
    } else {
        chosen_ = best->digest;
        chosen_gen_ = best->gen;
    }
}

std::shared_ptr<const ClusterMap> ConvergenceEngine::held_map(std::uint64_t digest) const {
    if (digest == 0)
        return nullptr;
    if (base_ && base_digest_ == digest)
        return base_;
    if (target_ && target_digest_ == digest)
        return target_;
    if (prev_ && prev_digest_ == digest)
        return prev_;
    return nullptr;
}

void ConvergenceEngine::set_base(std::int64_t now, std::shared_ptr<const ClusterMap> map,
                                 std::uint64_t digest, std::uint32_t generation) {
    base_ = std::move(map);
    base_digest_ = base_ ? digest : 0;
    base_gen_ = base_ ? generation : 0;
    base_encoded_ = base_ ? encode_map(*base_) : std::vector<std::uint8_t>{};
    chunk_cursor_ = 0;
    lacking_since_ = -1;
    ++params_generation_;
    send_soon(now);
}

void ConvergenceEngine::forget_maps(std::int64_t now) {
    if (base_)
        set_base(now, nullptr, 0, 0);
    target_valid_ = false;
    if (give_up_) {
        give_up_ = false;
        ++params_generation_;
    }
    assembly_.reset();
}

void ConvergenceEngine::follow_base(std::int64_t now) {
    if (chosen_ == 0 || base_digest_ == chosen_) {
        lacking_since_ = -1;
        return;
    }
    if (auto map = held_map(chosen_)) {
        set_base(now, std::move(map), chosen_, chosen_gen_);
        return;
    }
    // Waiting for a transfer. Bounded: after give_up_ms the cluster falls back to the
    // stateless allocation rather than stall (every member sees the flag in our heartbeat).
    if (!agreeing_ || !participating()) {
        lacking_since_ = -1;
        return;
    }
    if (lacking_since_ < 0) {
        lacking_since_ = now;
    } else if (!give_up_ && now - lacking_since_ > give_up_ms()) {
        give_up_ = true;
        ++params_generation_;
        ++counters_.map_fallbacks;
        event(now, EventKind::map_fallback, me_,
              "no copy of the cluster's map within " + std::to_string(give_up_ms()) +
                  " ms: falling back to the stateless allocation");
        send_soon(now);
    }
}

void ConvergenceEngine::on_map_chunk(std::span<const std::uint8_t> frame, std::int64_t now) {
    const auto decoded = decode_map_chunk(frame);
    if (!decoded.chunk) {
        count_undecodable(decoded.error);
        return;
    }
    const MapChunk& c = *decoded.chunk;
    if (!admit(frame, decoded.length, c.flags, c.cluster_ip, c.priority, c.nonce))
        return;
    if (!chunk_replay_.accept(c.priority, c.nonce, c.sequence)) {
        ++counters_.replayed;
        return;
    }
    const auto& peer = peers_.peer(c.priority);
    if (c.priority == me_ || !peer.alive || peer.heartbeat.nonce != c.nonce) {
        ++counters_.map_chunks_ignored;
        return;
    }
    ++counters_.map_chunks_received;
    if (chosen_ == 0 || c.map_digest != chosen_ || c.generation != chosen_gen_ ||
        base_digest_ == chosen_) {
        ++counters_.map_chunks_ignored;
        return;
    }
    switch (assembly_.add(c)) {
    case MapAssembly::Result::stored:
    case MapAssembly::Result::duplicate:
        return;
    case MapAssembly::Result::mismatch:
        ++counters_.map_rejected;
        return;
    case MapAssembly::Result::complete:
        break;
    }
    auto map = assembly_.take();
    if (!map) {
        ++counters_.map_rejected;
        return;
    }
    ++counters_.map_transfers;
    event(now, EventKind::map_received, c.priority,
          "base map received from host " + std::to_string(c.priority) + " (generation " +
              std::to_string(c.generation) + ")");
    set_base(now, std::make_shared<const ClusterMap>(std::move(*map)), c.map_digest, c.generation);
    evaluate(now);
}

bool ConvergenceEngine::member_lacks_base(const Heartbeat& hb) const {
    // A member lacks the base once it agrees that it is the cluster's (same view digest), or
    // when it has none and was not in our epoch (it just joined or restarted); otherwise its
    // report may just be older than the change (it has not taken its map as base yet).
    const bool newcomer = hb.base_digest == 0 && !(epoch_members_ & host_bit(hb.priority));
    return hb.base_digest != chosen_ && (hb.view_digest == view_digest_ || newcomer);
}

void ConvergenceEngine::send_chunks() {
    if (chosen_ == 0 || base_digest_ != chosen_ || base_encoded_.empty() || !participating())
        return;
    // The lowest holder among the members sends; only while a member lacks the base.
    bool lacking = false;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == me_ || !(view_ & host_bit(p)))
            continue;
        const auto& hb = peers_.peer(p).heartbeat;
        // A holder: it reports the base, or holds it as its current map (it will report it).
        if ((hb.base_digest == chosen_ || hb.map_digest == chosen_) && p < me_)
            return;
        lacking = lacking || member_lacks_base(hb);
    }
    if (!lacking)
        return;
    const auto count = chunk_count(base_encoded_.size());
    const std::size_t n = std::min(kChunksPerSend, count);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t index = chunk_cursor_++ % count;
        MapChunk c;
        c.flags = auth_.keyed() ? Heartbeat::kFlagAuthenticated : 0;
        c.cluster_ip = config_.cluster.ip;
        c.priority = me_;
        c.nonce = nonce_;
        c.sequence = ++chunk_sequence_;
        c.map_digest = base_digest_;
        c.generation = base_gen_;
        c.map_size = static_cast<std::uint32_t>(base_encoded_.size());
        c.index = static_cast<std::uint16_t>(index);
        c.count = static_cast<std::uint16_t>(count);
        const auto data = chunk_data(base_encoded_, index);
        c.data.assign(data.begin(), data.end());
        auto frame = encode_map_chunk(c);
        auth_.sign(frame);
        out_.frames.push_back(std::move(frame));
        ++counters_.map_chunks_sent;
    }
}

} // namespace nlb
