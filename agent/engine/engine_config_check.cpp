// ConvergenceEngine, configuration: whether a peer's configuration is this host's (rules,
// seed, mode, VIPs, timing), what differs when it is not (for the refusal), and the one
// difference that yields instead of refusing: a key's seed beside a cluster on the fixed seed.
#include "convergence_engine.hpp"

#include "digest.hpp"

#include "engine_util.hpp"
#include "flow_seed.hpp"

namespace nlb {

using detail::serving_state;

namespace {

const char* mode_name(std::uint8_t mode) {
    static const char* const names[] = {"unicast", "multicast", "igmp"};
    return mode < 3 ? names[mode] : "unknown";
}

} // namespace

bool ConvergenceEngine::same_config(const Heartbeat& hb) const {
    if (hb.fingerprint != fingerprint_)
        return false;
    if (!hb.has_config)
        return true; // 1.1 sends the rules' fingerprint only
    if (hb.has_seed && hb.seed_digest != seed_digest_)
        return false; // the fingerprint says so too; config_difference names it
    const auto& c = config_.cluster;
    return hb.mode == c.mode && hb.heartbeat_ms == c.heartbeat_ms &&
           hb.heartbeat_tolerance == c.heartbeat_tolerance &&
           hb.cleanup_delay_s == c.cleanup_delay_s && hb.vips_digest == c.vips_digest;
}

void ConvergenceEngine::maybe_inherit_fixed_seed(const Heartbeat& hb, std::int64_t now) {
    // A rolling upgrade from a release without per-cluster seeds: the running cluster hashes
    // with the fixed seed, and a seed of this host's own would have it refused (or refuse
    // the old hosts) until every host is upgraded. A seed derived from the key is a default,
    // not the operator's choice (cluster.hash_seed is never given up), so it yields — only
    // before this host ever served (every flow of its own would move), only to a serving
    // member whose rules are this host's but for the seed, and never beside a live peer that
    // hashes with this host's own seed (a cluster already on it: a stray old host, or a
    // replayed 1.1 frame, which proves no freshness, must not pull a new host off it).
    auto& c = config_.cluster;
    if (c.flow_seed_source != SeedSource::key || ever_converged_ || !serving_state(hb.state))
        return;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const auto& peer = peers_.peer(p);
        if (p != me_ && peer.alive && peer.heartbeat.has_seed &&
            peer.heartbeat.seed_digest == seed_digest_)
            return;
    }
    const std::uint64_t fixed_digest = flow_seed_digest(c.ip, NLB_FLOW_SEED);
    if (hb.has_seed && (hb.seed_source != SeedSource::fixed || hb.seed_digest != fixed_digest))
        return;
    const std::uint64_t fixed_fingerprint = rules_fingerprint(config_.rules, NLB_FLOW_SEED, c.vlan);
    if (hb.fingerprint != fixed_fingerprint)
        return;
    c.flow_seed = NLB_FLOW_SEED;
    c.flow_seed_source = SeedSource::fixed;
    fingerprint_ = fixed_fingerprint;
    seed_digest_ = fixed_digest;
    out_.flow_seed = NLB_FLOW_SEED;
    ++params_generation_;
    event(now, EventKind::seed_inherited, hb.priority,
          "host " + std::to_string(hb.priority) +
              " hashes with the fixed seed (an earlier release, or a cluster upgraded from "
              "one): this host does too, instead of the seed derived from cluster.key_file");
}

std::string ConvergenceEngine::config_difference(const Heartbeat& hb) const {
    const std::string on = " on host " + std::to_string(hb.priority);
    // A staged configuration the cluster switched to while this host was away (or never
    // staged it): say so, rather than only that the rules differ.
    if (hb.switched_from != 0 && hb.switched_from == active_digest()) {
        return "host " + std::to_string(hb.priority) +
               " switched from this host's configuration to a staged one (" +
               digest_text(config_digest_of(hb)) + "): reload this host with it, or push it here";
    }
    auto number = [&](const char* key, std::uint32_t mine, std::uint32_t theirs) {
        return std::string(key) + " is " + std::to_string(mine) + " here, " +
               std::to_string(theirs) + on;
    };
    const auto& c = config_.cluster;
    // The seed enters the fingerprint too: name it first, or a seed that differs would read
    // as port rules that differ. A frame without the section is from a version that hashes
    // with the fixed seed.
    const std::string here =
        std::string("cluster.hash_seed is ") + describe(c.flow_seed_source) + " here, ";
    if (!hb.has_seed && seed_digest_ != flow_seed_digest(c.ip, NLB_FLOW_SEED))
        return here + "the fixed default" + on + " (a version without per-cluster seeds)";
    if (hb.has_seed && hb.seed_digest != seed_digest_) {
        if (hb.seed_source != c.flow_seed_source)
            return here + describe(hb.seed_source) + on;
        if (hb.seed_source == SeedSource::key)
            return "cluster.hash_seed is derived from cluster.key_file here and" + on +
                   ", from another key (a new key_file is a new seed: docs/config.md)";
        return "cluster.hash_seed is set here and" + on + " to different values";
    }
    if (hb.fingerprint != fingerprint_)
        // The fingerprint covers cluster.vlan too, which no heartbeat carries by itself.
        return "port_rules or cluster.vlan (" +
               (c.vlan ? std::to_string(c.vlan) : std::string("untagged")) +
               " here) differ from those" + on;
    if (!hb.has_config)
        return "";
    if (hb.mode != c.mode)
        return std::string("cluster.mode is ") + mode_name(c.mode) + " here, " +
               mode_name(hb.mode) + on;
    if (hb.vips_digest != c.vips_digest)
        return "cluster.vips differ from those" + on;
    if (hb.heartbeat_ms != c.heartbeat_ms)
        return number("cluster.heartbeat_ms", c.heartbeat_ms, hb.heartbeat_ms);
    if (hb.heartbeat_tolerance != c.heartbeat_tolerance)
        return number("cluster.heartbeat_tolerance", c.heartbeat_tolerance,
                      hb.heartbeat_tolerance);
    if (hb.cleanup_delay_s != c.cleanup_delay_s)
        return number("cluster.cleanup_delay_s", c.cleanup_delay_s, hb.cleanup_delay_s);
    return "";
}

} // namespace nlb
