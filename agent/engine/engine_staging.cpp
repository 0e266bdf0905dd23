// ConvergenceEngine, staged configuration (docs/staged-config.md): a new set of what every
// host must share is loaded beside the running one and advertised; the cluster switches when
// every live host of the cohort holds it, or follows one that switched; slots whose packets
// land elsewhere under the new set are taken only once every live host runs it.
#include "convergence_engine.hpp"

#include "digest.hpp"
#include "engine_util.hpp"
#include "flow_seed.hpp"

namespace nlb {

using detail::host_list;

namespace {

// Everything same_config compares, in one number: a heartbeat's and a configuration's agree
// exactly when same_config would.
std::uint64_t shared_digest(std::uint64_t fingerprint, std::uint64_t seed_digest, std::uint8_t mode,
                            std::uint32_t heartbeat_ms, std::uint32_t tolerance,
                            std::uint32_t cleanup_delay_s, std::uint64_t vips_digest) {
    DigestBuilder d;
    d.u32(0x6e6c6363) // "nlcc"
        .u64(fingerprint)
        .u64(seed_digest)
        .u8(mode)
        .u32(heartbeat_ms)
        .u32(tolerance)
        .u32(cleanup_delay_s)
        .u64(vips_digest);
    return d.finish();
}

std::uint64_t shared_digest(const EngineConfig& c) {
    const auto& k = c.cluster;
    return shared_digest(rules_fingerprint(c.rules, k.flow_seed, k.vlan),
                         flow_seed_digest(k.ip, k.flow_seed), k.mode, k.heartbeat_ms,
                         k.heartbeat_tolerance, k.cleanup_delay_s, k.vips_digest);
}

} // namespace

std::uint64_t ConvergenceEngine::active_digest() const {
    // fingerprint_ and seed_digest_ are the running set's (kept through a seed inherited or
    // a switch): no need to hash the rules again.
    const auto& k = config_.cluster;
    return shared_digest(fingerprint_, seed_digest_, k.mode, k.heartbeat_ms, k.heartbeat_tolerance,
                         k.cleanup_delay_s, k.vips_digest);
}

std::uint64_t ConvergenceEngine::config_digest_of(const Heartbeat& hb) const {
    if (!hb.has_config)
        return 0; // a 1.1 frame: it can take part in no switch
    const std::uint64_t seed =
        hb.has_seed ? hb.seed_digest : flow_seed_digest(config_.cluster.ip, NLB_FLOW_SEED);
    return shared_digest(hb.fingerprint, seed, hb.mode, hb.heartbeat_ms, hb.heartbeat_tolerance,
                         hb.cleanup_delay_s, hb.vips_digest);
}

std::string ConvergenceEngine::stage(EngineConfig next, std::uint64_t changed_slots,
                                     Millis now_ms) {
    const auto& c = config_.cluster;
    auto& n = next.cluster;
    if (next.host.priority != me_)
        return "host.priority changes";
    if (n.ip != c.ip)
        return "cluster.ip changes";
    if (n.mode != c.mode)
        return "cluster.mode changes";
    if (n.vlan != c.vlan)
        return "cluster.vlan changes";
    // Neither the key nor the seed is staged: both come from files or from the cluster the
    // host joined (an inherited fixed seed), and the running ones stay.
    n.key = c.key;
    n.rotation_key = c.rotation_key;
    n.flow_seed = c.flow_seed;
    n.flow_seed_source = c.flow_seed_source;
    next.host.rules.resize(next.rules.size());
    if (auto error = validate(next); !error.empty())
        return error;
    const std::int64_t now = now_ms.count();
    observe(now);
    const std::uint64_t digest = shared_digest(next);
    if (digest == active_digest()) {
        // The shared part is the running one: nothing to switch; host-local values apply
        // now, as a reload always applied them.
        staged_.reset();
        staged_digest_ = 0;
        staged_changed_ = 0;
        if (next.host.rules != config_.host.rules) {
            config_.host.rules = next.host.rules;
            ++params_generation_;
        }
    } else {
        staged_ = std::move(next);
        staged_digest_ = digest;
        staged_changed_ = changed_slots & ((std::uint64_t{1} << NLB_RULE_SLOTS) - 1);
    }
    send_soon(now);
    update_held(now);
    evaluate(now);
    return "";
}

std::uint64_t ConvergenceEngine::staged_waiting() const {
    if (!staged_)
        return 0;
    // A peer holds the set when it stages it, or runs it already (it started with the new
    // file): waiting for it to stage what it runs would hold the change forever.
    std::uint64_t waiting = 0;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == me_ || !(cohort_ & host_bit(p)))
            continue;
        const auto& hb = peers_.peer(p).heartbeat;
        if (hb.staged != staged_digest_ && config_digest_of(hb) != staged_digest_)
            waiting |= host_bit(p);
    }
    return waiting;
}

bool ConvergenceEngine::switching_peer(const Heartbeat& hb, std::int64_t now) const {
    if (switched_from_ == 0 || now - switched_at_ > 2 * tolerance_ms() || hb.staged == 0)
        return false;
    return hb.staged == active_digest() && config_digest_of(hb) == switched_from_;
}

bool ConvergenceEngine::runs_staged(const Heartbeat& hb) const {
    return staged_ && config_digest_of(hb) == staged_digest_;
}

bool ConvergenceEngine::maybe_switch(std::int64_t now) {
    if (!staged_)
        return false;
    const std::uint64_t running = active_digest();
    const std::int64_t window = segment_window(now);
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p == me_ || !peer.alive || !two_way(p, now, window))
            continue;
        const auto& hb = peer.heartbeat;
        if (hb.switched_from == running && config_digest_of(hb) == staged_digest_) {
            switch_config(now, "host " + std::to_string(p) + " switched to it");
            return true;
        }
    }
    // A host that just started has not heard its peers yet: it would switch alone. Nor has
    // one back from a stall, which counted every peer not heard meanwhile dead before it read
    // what queued up: switched alone, it had peers that hold the set too follow it (a),
    // leaving those that do not on the old set, the cluster split and one side refused.
    if (now - born_ < tolerance_ms() || now - stalled_at_ < tolerance_ms())
        return false;
    if (staged_waiting() != 0)
        return false;
    switch_config(now, cohort_ == host_bit(me_) ? "no other live host of this configuration"
                                                : "hosts " + host_list(cohort_) + " hold it");
    return true;
}

void ConvergenceEngine::switch_config(std::int64_t now, const std::string& why) {
    const std::uint64_t from = active_digest();
    const std::uint64_t changed = staged_changed_;
    EngineConfig next = std::move(*staged_);
    // The start wait is what the agent kept from the run before, not part of a file: a switch
    // while this host still waits it out must not end it (a paused peer of the earlier timing
    // serves on until its own watchdog).
    next.host.start_wait_ms = config_.host.start_wait_ms;
    staged_.reset();
    staged_digest_ = 0;
    staged_changed_ = 0;
    // The operator's `nlbadm disable` or drain of a rule concerns that rule: a rule whose
    // slot changed, or a new one, starts as its configuration says (the agent applies it).
    for (std::size_t r = 0; r < NLB_MAX_RULES; ++r)
        if (r >= next.rules.size() || ((changed >> r) & 1))
            control_[r] = RuleControl::enabled;
    config_ = std::move(next);
    fingerprint_ =
        rules_fingerprint(config_.rules, config_.cluster.flow_seed, config_.cluster.vlan);
    modes_.clear();
    for (const auto& r : config_.rules)
        modes_.push_back(r.mode);
    const std::uint32_t mask = config_.rules.size() >= 32
                                   ? ~std::uint32_t{0}
                                   : (std::uint32_t{1} << config_.rules.size()) - 1;
    probe_down_ &= mask;
    load_rules_ &= mask;
    switched_from_ = from;
    switched_at_ = now;
    if (changed) {
        // Released at once: under the new tables their packets are other packets. What this
        // host still serves in them stays tracked here (held, reported dirty).
        for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
            if ((changed >> s) & 1)
                release_slot(now, s);
        changed_slots_ |= changed;
        switch_install_pending_ = true;
    }
    ++params_generation_;
    out_.switched = true;
    event(now, EventKind::config_switched, me_,
          "staged configuration now running (" + why + ")" +
              (changed ? ", changed slots wait for every host" : ""));
    update_held(now);
    send_soon(now);
}

} // namespace nlb
