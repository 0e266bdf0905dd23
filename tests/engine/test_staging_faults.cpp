// Staged configuration under faults (docs/staged-config.md): a switch during a pause, a
// partition, loss, a restart, with a host that never gets the set, a second stage before the
// first switched; heartbeat timing switched while a host is paused. Checked at every instant:
// no bucket has two serving owners, no changed slot is served under two sets at once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlb/flow.h>

#include "chaos_schedule.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_staging_faults {

namespace {

constexpr std::uint64_t kSlot1 = std::uint64_t{1} << 1;

bool serving(const SimHost& h) {
    return h.alive && !h.watchdog_expired && !h.vm_paused && h.installed;
}

// Serving hosts that own buckets of a slot in `changed`, by how they hash it (the rule's
// fingerprint): false when two hashings serve one such slot at once.
[[maybe_unused]] bool one_config_serves(Simulator& sim, std::uint64_t changed) {
    for (std::size_t slot = 0; slot < NLB_RULE_SLOTS; ++slot) {
        if (!((changed >> slot) & 1))
            continue;
        std::uint64_t digest = 0;
        for (std::size_t i = 0; i < sim.size(); ++i) {
            auto& h = sim.host(i);
            if (!serving(h))
                continue;
            const auto me = h.engine->priority();
            const auto& owners = (*h.installed)[slot].owners;
            if (std::none_of(owners.begin(), owners.end(), [&](std::uint8_t o) { return o == me; }))
                continue;
            const auto& rules = h.engine->config().rules;
            const std::uint64_t hashing =
                slot < rules.size() ? rules_fingerprint(std::span<const PortRule>(&rules[slot], 1),
                                                        NLB_FLOW_SEED, 0)
                                    : 1;
            if (digest != 0 && digest != hashing)
                return false;
            digest = hashing;
        }
    }
    return true;
}

EngineConfig timing(std::uint8_t priority, std::uint32_t ms) {
    auto c = default_config(priority, 2);
    c.cluster.heartbeat_ms = ms;
    return c;
}

} // namespace

TEST_CASE("heartbeat timing switched 1000 -> 100 ms while a host that staged it is paused") {
    // Host 3 stages 100 ms heartbeats and is held up (SIGSTOP, a stalled event loop) for
    // less than its watchdog, 4 s at 1000 ms; hosts 1 and 2 then stage the same and switch
    // (host 3 holds it). At 100 ms they counted host 3 dead half a second after its last
    // frame and took its buckets while its dataplane still served them by its own timing:
    // two owners for 2.4-3.3 s on 4 of 4 seeds. A peer is dead, and its claim lapses, by
    // the longer of this host's timing and the one its heartbeat gives.
    for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
        INFO("seed " << seed);
        Simulator sim(seed, {});
        for (std::uint8_t p = 1; p <= 3; ++p)
            sim.add_host(default_config(p, 2));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30000));
        REQUIRE(sim.stage(2, timing(3, 100), 0).empty());
        sim.run_until(sim.now() + 1500);
        sim.pause(2); // for less than its watchdog (4 s at 1000 ms)
        const auto paused = sim.now();
        REQUIRE(sim.stage(0, timing(1, 100), 0).empty());
        REQUIRE(sim.stage(1, timing(2, 100), 0).empty());
        sim.reset_double_stats();
        sim.run_until(paused + 2500 + static_cast<std::int64_t>(seed) * 300);
        sim.resume(2);
        const bool done = sim.run_until(
            [&] {
                return sim.settled() && sim.host(2).engine->converged() &&
                       sim.host(2).engine->config().cluster.heartbeat_ms == 100;
            },
            sim.now() + 20000);
        INFO("two owners for " << sim.max_double_ms() << " ms");
        REQUIRE(done);
        CHECK(sim.max_double_ms() == 0);

        // And back to 1000 ms, host 3 held up for less than its watchdog at 100 ms.
        REQUIRE(sim.stage(2, timing(3, 1000), 0).empty());
        sim.run_until(sim.now() + 150);
        sim.pause(2);
        REQUIRE(sim.stage(0, timing(1, 1000), 0).empty());
        REQUIRE(sim.stage(1, timing(2, 1000), 0).empty());
        sim.run_until(sim.now() + 150 + static_cast<std::int64_t>(seed) * 50);
        sim.resume(2);
        REQUIRE(sim.run_until(
            [&] {
                for (std::size_t i = 0; i < 3; ++i)
                    if (!sim.host(i).engine->converged() ||
                        sim.host(i).engine->config().cluster.heartbeat_ms != 1000)
                        return false;
                return sim.settled();
            },
            sim.now() + 20000));
        CHECK(sim.max_double_ms() == 0);
    }
}

TEST_CASE("a host back from a stall does not switch alone to what it stages") {
    // Hosts 2 and 3 stage a set, host 1 does not (yet). Host 3 stalls past its watchdog. On
    // resume it counted every peer dead before it read what queued up; switching then, alone,
    // it had host 2 follow it (it holds the set), and host 1, now the smaller group, was
    // refused: a change the operator had not finished, made by a stall.
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        INFO("seed " << seed);
        Simulator sim(2100 + seed, {0.0, 1, 5});
        for (std::uint8_t p = 1; p <= 3; ++p)
            sim.add_host(default_config(p, 2));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30000));
        auto next = [](std::uint8_t p) {
            auto c = default_config(p, 2);
            c.rules[1].affinity = Affinity::none;
            return c;
        };
        REQUIRE(sim.stage(1, next(2), kSlot1).empty());
        REQUIRE(sim.stage(2, next(3), kSlot1).empty());
        sim.run_until(sim.now() + 2000);
        sim.pause(2);
        sim.run_until(sim.now() + 6000 + static_cast<std::int64_t>(seed) * 700);
        sim.resume(2);
        sim.reset_double_stats();
        sim.run_until(sim.now() + 20000);
        for (std::size_t i = 0; i < 3; ++i) {
            INFO("host " << i + 1);
            CHECK(count_events(sim.host(i), EventKind::config_switched) == 0);
            CHECK(sim.host(i).engine->converged());
        }
        CHECK(sim.settled());
        CHECK(sim.max_double_ms() == 0);
    }
}

namespace {

const std::vector<std::uint8_t> kKey(32, 0x5a);

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* env = std::getenv(name);
    return env ? std::strtoull(env, nullptr, 10) : fallback;
}

// The sets the schedules stage: bit 0 rule 1 hashed on the whole connection (slot 1 changes),
// bit 1 heartbeats every 300 ms instead of 1000, bit 2 a second VIP list.
EngineConfig set_for(std::uint8_t priority, std::size_t hosts, unsigned set) {
    auto c = default_config(priority, 2);
    c.cluster.key = kKey;
    for (std::size_t p = 1; p <= hosts; ++p)
        c.host.peers.push_back(default_config(static_cast<std::uint8_t>(p)).host.contact);
    if (set & 1)
        c.rules[1].affinity = Affinity::none;
    if (set & 2)
        c.cluster.heartbeat_ms = 300;
    if (set & 4)
        c.cluster.vips_digest = 0x1234;
    return c;
}

std::uint64_t changed_between(unsigned a, unsigned b) {
    return ((a ^ b) & 1) ? kSlot1 : 0;
}

// Random schedules around staged changes on 2-6 hosts: sets staged host by host at random
// paces, a second set staged before the first switched, a host that never gets it until the
// end, event-loop delays (a pause whose frames queue up and come at once) of 0.5-3
// tolerances, crashes restarted with the running set or the staged one, loss bursts, weight
// changes, drainstop, per-rule enable / disable / drain. No partitions (both sides of one
// serve by design): loss bursts hit the segment only, the second path stays: at every instant no
// bucket has two serving owners and no changed slot is served under two sets; once the faults end
// and every host has the last set staged, the cluster switches and settles within 40 periods.
// Seeds 0-1599 all pass; 528, 1377 and 1544 failed (two owners for 75-233 ms) until a host
// restarted with a new file of shorter heartbeats waited out the tolerance its agent kept
// (restarted(), HostParams::start_wait_ms): hearing nobody (its peers held up), it served alone
// after its own, shorter, tolerance, while a held-up peer's watchdog still ran by the longer
// timing (docs/staged-config.md).
class StageOps {
  public:
    explicit StageOps(std::uint64_t seed) : rng_(seed * 7919 + 3) {
        const std::size_t sizes[] = {2, 2, 3, 3, 4, 5, 6};
        n_ = sizes[pick(7)];
        NetworkParams net;
        net.loss = pick(3) * 0.02;
        net.delay_max_ms = 2 + static_cast<std::int64_t>(pick(30));
        net.linger_ms = pick(2) ? static_cast<std::int64_t>(pick(50)) : 0;
        sim_.emplace(seed, net);
        for (std::size_t i = 0; i < n_; ++i) {
            index_.push_back(sim_->add_host(set_for(static_cast<std::uint8_t>(i + 1), n_, 0)));
            runs_file_.push_back(0);
        }
        sim_->drop = [this](std::size_t from, std::size_t to, const auto&) {
            return dropped(from, to);
        };
        log_ << "hosts=" << n_ << " loss=" << net.loss << " linger=" << net.linger_ms;
    }

    Simulator& sim() { return *sim_; }
    std::string log() const { return log_.str(); }
    std::int64_t mixed_ms() const { return mixed_ms_; }

    void run_faults(std::int64_t periods) {
        const auto end = sim_->now() + periods * 1000;
        while (sim_->now() < end) {
            advance(std::min(end, sim_->now() + 200 + static_cast<std::int64_t>(pick(2000))));
            if (sim_->now() < end)
                act();
        }
    }

    void end_faults() {
        bursts_.clear();
        for (std::size_t p = 0; p < n_; ++p) {
            if (resume_at_[p] >= 0) {
                resume_at_[p] = -1;
                sim_->resume(index_[p]);
            }
            if (!sim_->host(index_[p]).alive) {
                drained_.restarted(p);
                index_[p] = sim_->add_host(restarted(p, target_));
            }
        }
        for (std::size_t p = 0; p < n_; ++p) {
            auto& e = *sim_->host(index_[p]).engine;
            sim_->set_host_rules(index_[p], std::vector<HostRuleParams>(2));
            sim_->command(index_[p], {CommandKind::rule_enable, -1});
            // Also where it runs the target already: that removes what else was staged.
            REQUIRE(sim_->stage(index_[p], set_for(static_cast<std::uint8_t>(p + 1), n_, target_),
                                changed_between(running(p), target_))
                        .empty());
            if (drained_.started_at_end(p, e.state()))
                sim_->command(index_[p], {CommandKind::start});
        }
        note() << "faults end, every host stages set " << target_;
    }

    bool all_in() {
        for (std::size_t p = 0; p < n_; ++p) {
            const auto& e = *sim_->host(index_[p]).engine;
            if (e.state() != HostState::converged || e.active_digest() != digest_of(p, target_))
                return false;
        }
        return sim_->settled() && sim_->all_owned_once(0) && sim_->all_owned_once(1);
    }

    void run_to(std::int64_t t) {
        sim_->run_until(
            [&] {
                const bool mixed = !one_config_serves(*sim_, kSlot1 * changed_ever_);
                if (mixed && mixed_since_ < 0) {
                    mixed_since_ = sim_->now();
                    note() << "slot 1 served under two sets";
                }
                if (!mixed && mixed_since_ >= 0) {
                    mixed_ms_ = std::max(mixed_ms_, sim_->now() - mixed_since_);
                    mixed_since_ = -1;
                }
                const bool doubled = sim_->double_since() >= 0;
                if (doubled != doubled_) {
                    doubled_ = doubled;
                    note() << (doubled ? "two owners" : "one owner each again");
                    if (doubled && std::getenv("NLB_STAGE_CHAOS_LOG"))
                        describe();
                }
                return false;
            },
            t);
    }

  private:
    void describe() {
        for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
            for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b) {
                if (sim_->owners(s, b) < 2)
                    continue;
                log_ << " slot " << s << " bucket " << b << ":";
                for (std::size_t i = 0; i < sim_->size(); ++i) {
                    const auto& h = sim_->host(i);
                    if (serving(h) && (*h.installed)[s].owners[b] == h.engine->priority())
                        log_ << " host " << int(h.engine->priority()) << " (boot " << i << ", "
                             << to_string(h.engine->state()) << ", epoch " << std::hex
                             << h.engine->epoch() << std::dec << (h.paused ? ", paused" : "")
                             << ")";
                }
                goto done;
            }
    done:
        for (std::size_t i = 0; i < sim_->size(); ++i) {
            const auto& h = sim_->host(i);
            if (!h.alive)
                continue;
            log_ << "\n    boot " << i << " of host " << int(h.engine->priority())
                 << " hb=" << h.engine->config().cluster.heartbeat_ms << ":";
            for (const auto& e : h.events)
                if (e.at.count() > sim_->now() - 12000)
                    log_ << "\n      " << e.at.count() << " " << to_string(e.kind) << " "
                         << int(e.host) << " " << e.text;
        }
    }

    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
    std::ostream& note() { return log_ << "\nt=" << sim_->now() << " "; }

    std::uint64_t digest_of(std::size_t p, unsigned set) {
        // A throwaway engine's digest of that set (no network).
        ConvergenceEngine e(set_for(static_cast<std::uint8_t>(p + 1), n_, set), 1, Millis{0});
        return e.active_digest();
    }

    unsigned running(std::size_t p) {
        const auto d = sim_->host(index_[p]).engine->active_digest();
        for (unsigned s = 0; s < 8; ++s)
            if (digest_of(p, s) == d)
                return s;
        FAIL("unknown set");
        return 0;
    }

    std::size_t host_of(std::size_t index) const {
        for (std::size_t p = 0; p < n_; ++p)
            if (index_[p] == index)
                return p;
        return n_;
    }

    bool dropped(std::size_t from, std::size_t to) {
        const auto pf = host_of(from), pt = host_of(to);
        for (const auto& b : bursts_)
            if (sim_->now() < b.to && (b.in ? b.host == pt : b.host == pf) &&
                std::uniform_real_distribution<>(0, 1)(rng_) < b.share)
                return true;
        return false;
    }

    void advance(std::int64_t t) {
        while (true) {
            std::int64_t due = -1;
            std::size_t who = 0;
            for (std::size_t p = 0; p < n_; ++p)
                if (resume_at_[p] >= 0 && (due < 0 || resume_at_[p] < due))
                    due = resume_at_[p], who = p;
            for (const auto& [at, p] : restarts_)
                if (due < 0 || at < due)
                    due = at, who = p + 100;
            if (due < 0 || due > t)
                break;
            run_to(due);
            if (who >= 100) {
                const auto p = who - 100;
                restarts_.erase(restarts_.begin());
                // The new file when the operator has staged the target here already.
                const unsigned set = runs_file_[p]; // the file: the set staged here last
                note() << "restart " << p + 1 << " with set " << set;
                index_[p] = sim_->add_host(restarted(p, set));
                runs_file_[p] = set;
                drained_.restarted(p);
            } else {
                note() << "resume " << who + 1;
                resume_at_[who] = -1;
                sim_->resume(index_[who]);
            }
        }
        run_to(t);
    }

    bool busy(std::size_t p) const {
        if (resume_at_[p] >= 0)
            return true;
        for (const auto& [at, q] : restarts_)
            if (q == p)
                return true;
        return false;
    }

    void act() {
        const auto p = pick(n_);
        const auto i = index_[p];
        const auto now = sim_->now();
        switch (pick(12)) {
        case 0:
        case 1:
        case 2: {
            // The operator stages the target on the next host; now and then a new target.
            if (busy(p))
                break;
            if (pick(4) == 0) {
                target_ = static_cast<unsigned>(pick(8));
                staged_here_.assign(n_, false);
                note() << "new target set " << target_;
            }
            if (never_ == p && pick(3) != 0)
                break; // this host does not get it (yet)
            const auto from = running(p);
            note() << "stage set " << target_ << " on " << p + 1 << " (runs " << from << ")";
            REQUIRE(sim_->stage(i, set_for(static_cast<std::uint8_t>(p + 1), n_, target_),
                                changed_between(from, target_))
                        .empty());
            changed_ever_ |= changed_between(from, target_) != 0;
            staged_here_[p] = true;
            runs_file_[p] = target_;
            break;
        }
        case 3:
        case 4: {
            if (busy(p))
                break;
            // The event loop held up: timers late, frames queued, none lost.
            const auto tol =
                5 * static_cast<std::int64_t>(sim_->host(i).engine->config().cluster.heartbeat_ms);
            resume_at_[p] = now + tol / 2 +
                            static_cast<std::int64_t>(pick(static_cast<std::size_t>(5 * tol / 2)));
            note() << "hold up " << p + 1 << " until " << resume_at_[p];
            sim_->pause(i);
            break;
        }
        case 5:
            if (busy(p))
                break;
            // What its agent kept for the next start (HostParams::start_wait_ms).
            kept_wait_[p] = sim_->host(i).engine->cluster_tolerance_ms(Millis{sim_->clock_of(i)});
            sim_->kill(i);
            restarts_.emplace(now + (pick(2) ? static_cast<std::int64_t>(pick(60))
                                             : 1000 + static_cast<std::int64_t>(pick(8000))),
                              p);
            note() << "crash " << p + 1;
            break;
        case 6:
            bursts_.push_back({p, pick(2) != 0, 0.3 + 0.1 * static_cast<double>(pick(8)),
                               now + 250 + static_cast<std::int64_t>(pick(3000))});
            note() << "loss burst at " << p + 1;
            break;
        case 7: {
            if (busy(p))
                break;
            std::vector<HostRuleParams> params(2);
            params[pick(2)].load_weight = static_cast<std::uint8_t>(pick(101));
            note() << "weights on " << p + 1;
            sim_->set_host_rules(i, params);
            break;
        }
        case 8: {
            if (busy(p))
                break;
            const CommandKind kinds[] = {CommandKind::drainstop,    CommandKind::start,
                                         CommandKind::rule_disable, CommandKind::rule_drain,
                                         CommandKind::rule_enable,  CommandKind::stop};
            const auto k = pick(6);
            const int rule = static_cast<int>(pick(3)) - 1;
            note() << "command " << k << " rule " << rule << " on " << p + 1;
            sim_->command(i, {kinds[k], rule});
            drained_.command(p, kinds[k]);
            break;
        }
        case 9:
            if (never_ == n_ && pick(2)) {
                never_ = p;
                note() << "host " << p + 1 << " gets no set until the end";
            }
            break;
        default:
            break;
        }
    }

    struct Burst {
        std::size_t host;
        bool in;
        double share;
        std::int64_t to;
    };
    std::mt19937_64 rng_;
    std::size_t n_ = 0;
    std::optional<Simulator> sim_;
    std::vector<std::size_t> index_;
    std::vector<unsigned> runs_file_;
    std::vector<bool> staged_here_ = std::vector<bool>(8, false);
    chaos::DrainStops drained_;
    std::int64_t kept_wait_[8] = {}; // at its last crash

    // Host p's next boot on `set`, with what its agent kept of the cluster it ran in.
    EngineConfig restarted(std::size_t p, unsigned set) const {
        auto c = set_for(static_cast<std::uint8_t>(p + 1), n_, set);
        c.host.start_wait_ms = kept_wait_[p];
        return c;
    }
    std::int64_t resume_at_[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    std::multimap<std::int64_t, std::size_t> restarts_;
    std::vector<Burst> bursts_;
    unsigned target_ = 1;
    std::size_t never_ = 99;
    bool changed_ever_ = false;
    bool doubled_ = false;
    std::int64_t mixed_since_ = -1, mixed_ms_ = 0;
    std::ostringstream log_;
};

} // namespace

namespace {

// After a partition heals: how long two serving hosts still own one bucket, or two hashings
// still serve a changed slot, from the heal on; whether the cluster then settles with every
// host converged on one set.
struct Heal {
    std::int64_t double_ms = 0, mixed_ms = 0, settled_after = -1;
};

Heal heal(Simulator& sim, std::uint64_t changed, std::int64_t bound,
          const std::function<bool()>& done = {}) {
    for (std::size_t i = 0; i < sim.size(); ++i)
        sim.set_group(i, 0);
    const auto at = sim.now();
    Heal out;
    sim.reset_double_stats();
    std::int64_t mixed_since = one_config_serves(sim, changed) ? -1 : at;
    std::int64_t double_since = sim.double_since() >= 0 ? at : -1;
    const bool ok = sim.run_until(
        [&] {
            // Two owners since the partition count from the heal.
            const bool doubled = sim.double_since() >= 0;
            if (doubled && double_since < 0)
                double_since = sim.now();
            if (!doubled && double_since >= 0) {
                out.double_ms = std::max(out.double_ms, sim.now() - double_since);
                double_since = -1;
            }
            const bool mixed = !one_config_serves(sim, changed);
            if (mixed && mixed_since < 0)
                mixed_since = sim.now();
            if (!mixed && mixed_since >= 0) {
                out.mixed_ms = std::max(out.mixed_ms, sim.now() - mixed_since);
                mixed_since = -1;
            }
            if (!sim.settled())
                return false;
            for (std::size_t i = 0; i < sim.size(); ++i)
                if (sim.host(i).alive && !sim.host(i).engine->converged())
                    return false;
            return !done || done();
        },
        at + bound);
    if (mixed_since >= 0)
        out.mixed_ms = std::max(out.mixed_ms, sim.now() - mixed_since);
    if (double_since >= 0)
        out.double_ms = std::max(out.double_ms, sim.now() - double_since);
    if (ok)
        out.settled_after = sim.now() - at;
    return out;
}

// run_until, the predicate looked at every `step` ms only (the simulator tracks two owners at
// every instant by itself): large clusters cost less so.
bool run_checked(Simulator& sim, const std::function<bool()>& pred, std::int64_t deadline,
                 std::int64_t step = 50) {
    while (sim.now() < deadline) {
        sim.run_until(std::min(deadline, sim.now() + step));
        if (pred())
            return true;
    }
    return pred();
}

bool all_run(Simulator& sim, unsigned set) {
    for (std::size_t i = 0; i < sim.size(); ++i) {
        const auto& e = *sim.host(i).engine;
        if (!sim.host(i).alive)
            continue;
        const bool affinity_none = e.config().rules[1].affinity == Affinity::none;
        const bool fast = e.config().cluster.heartbeat_ms == 300;
        if (affinity_none != bool(set & 1) || fast != bool(set & 2))
            return false;
    }
    return true;
}

} // namespace

TEST_CASE("staged changes across a partition: each side switches or not, the heal resolves "
          "within a period and the cluster settles on one set") {
    // 4 hosts split 2 | 2 (a tie) or 3 | 1. Variants: both sides stage the set and switch
    // apart; one side stages and switches, the other never gets the set until after the heal;
    // the set is staged on every host, the partition comes before the last one's frame is
    // heard. Both sides serve while apart, by design; from the heal on two owners, or two
    // hashings of the changed slot, last at most a period (and the frames' delay).
    int variant = 0;
    const auto rounds = env_or("NLB_STAGE_PARTITION_SEEDS", 1);
    for (std::uint64_t round = 0; round < rounds; ++round)
        for (unsigned set : {1u, 3u}) {
            for (int how = 0; how < 3; ++how) {
                for (std::size_t cut : {2u, 3u}) {
                    const std::uint64_t seed = 900 + static_cast<std::uint64_t>(variant++) * 7;
                    INFO("set " << set << " how " << how << " cut " << cut << " seed " << seed);
                    Simulator sim(seed, {0.01, 1, 8});
                    const std::size_t n = 4;
                    for (std::size_t i = 0; i < n; ++i)
                        sim.add_host(set_for(static_cast<std::uint8_t>(i + 1), n, 0));
                    REQUIRE(sim.run_until([&] { return sim.settled(); }, 30000));
                    for (std::size_t i = 0; i < n; ++i)
                        sim.host(i).accept_rate = i < cut ? 1 : 3;
                    if (how == 2) {
                        for (std::size_t i = 0; i + 1 < n; ++i)
                            REQUIRE(sim.stage(i, set_for(static_cast<std::uint8_t>(i + 1), n, set),
                                              changed_between(0, set))
                                        .empty());
                    }
                    for (std::size_t i = cut; i < n; ++i)
                        sim.set_group(i, 1);
                    if (how == 2)
                        REQUIRE(sim.stage(n - 1, set_for(static_cast<std::uint8_t>(n), n, set),
                                          changed_between(0, set))
                                    .empty());
                    sim.run_until(sim.now() + 3000);
                    if (how < 2)
                        for (std::size_t i = 0; i < n; ++i)
                            if (how == 0 || i < cut)
                                REQUIRE(sim.stage(i,
                                                  set_for(static_cast<std::uint8_t>(i + 1), n, set),
                                                  changed_between(0, set))
                                            .empty());
                    sim.run_until(sim.now() + 12000);
                    if (how == 0)
                        CHECK(all_run(sim, set));
                    const auto h = heal(sim, kSlot1, how == 1 ? 10000 : 40000);
                    INFO("double " << h.double_ms << " mixed " << h.mixed_ms << " settled after "
                                   << h.settled_after);
                    CHECK(h.double_ms <= 1000 + 20);
                    CHECK(h.mixed_ms <= 1000 + 20);
                    CHECK((how == 1 || h.settled_after >= 0));
                    if (how == 1) {
                        // The side without the set gets it now.
                        for (std::size_t i = cut; i < n; ++i)
                            REQUIRE(sim.stage(i, set_for(static_cast<std::uint8_t>(i + 1), n, set),
                                              changed_between(0, set))
                                        .empty());
                    }
                    sim.reset_double_stats();
                    bool mixed = false;
                    REQUIRE(sim.run_until(
                        [&] {
                            mixed = mixed || !one_config_serves(sim, kSlot1);
                            return all_run(sim, set) && sim.settled() && sim.all_owned_once(1);
                        },
                        sim.now() + 40000));
                    CHECK(sim.max_double_ms() == 0);
                    CHECK_FALSE(mixed);
                }
            }
        }
}

TEST_CASE("weights and commands during a partition and at its heal") {
    // 5 hosts split 3 | 2. While apart each side changes: weights, a drainstop, a rule
    // drained, a rule disabled; more changes land at the very instant of the heal. From the
    // heal on, two owners last at most a period; then the cluster settles, no bucket twice.
    const auto seeds = env_or("NLB_STAGE_PARTITION_SEEDS", 6);
    for (std::uint64_t seed = 0; seed < seeds; ++seed) {
        INFO("seed " << seed);
        Simulator sim(1700 + seed, {0.02, 1, 10});
        const std::size_t n = 5;
        for (std::size_t i = 0; i < n; ++i)
            sim.add_host(set_for(static_cast<std::uint8_t>(i + 1), n, 0));
        REQUIRE(sim.run_until([&] { return sim.settled(); }, 30000));
        std::mt19937_64 rng(seed);
        for (std::size_t i = 3; i < n; ++i)
            sim.set_group(i, 1);
        auto change = [&](std::size_t i) {
            switch (rng() % 5) {
            case 0: {
                std::vector<HostRuleParams> params(2);
                params[rng() % 2].load_weight = static_cast<std::uint8_t>(rng() % 101);
                sim.set_host_rules(i, params);
                break;
            }
            case 1:
                sim.command(i, {CommandKind::drainstop});
                break;
            case 2:
                sim.command(i, {CommandKind::rule_drain, static_cast<int>(rng() % 2)});
                break;
            case 3:
                sim.command(i, {CommandKind::rule_disable, static_cast<int>(rng() % 2)});
                break;
            default:
                sim.command(i, {CommandKind::rule_enable, -1});
                break;
            }
        };
        sim.run_until(sim.now() + 2000 + static_cast<std::int64_t>(rng() % 3000));
        change(rng() % 3);
        change(3 + rng() % 2);
        sim.run_until(sim.now() + 8000 + static_cast<std::int64_t>(rng() % 1000));
        change(rng() % 3);
        change(3 + rng() % 2);
        const auto h = heal(sim, 0, 10000);
        INFO("double " << h.double_ms << " settled after " << h.settled_after);
        CHECK(h.double_ms <= 1000 + 20);
        sim.reset_double_stats();
        for (std::size_t i = 0; i < n; ++i) {
            sim.set_host_rules(i, std::vector<HostRuleParams>(2));
            sim.command(i, {CommandKind::rule_enable, -1});
            sim.command(i, {CommandKind::start});
        }
        REQUIRE(sim.run_until(
            [&] {
                for (std::size_t i = 0; i < n; ++i)
                    if (!sim.host(i).engine->converged())
                        return false;
                return sim.settled() && sim.all_owned_once(0) && sim.all_owned_once(1);
            },
            sim.now() + 40000));
        CHECK(sim.max_double_ms() == 0);
    }
}

TEST_CASE("64 hosts: 8 join at once, 8 leave at once, a 32 | 32 partition and its heal") {
    Simulator sim(6400, {0.0, 1, 5});
    const std::size_t n = 64;
    for (std::size_t i = 0; i < 56; ++i)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
    REQUIRE(run_checked(
        sim, [&] { return sim.settled(); }, 40000));
    sim.reset_double_stats();
    for (std::size_t i = 56; i < n; ++i)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
    auto t0 = sim.now();
    REQUIRE(run_checked(
        sim, [&] { return sim.settled() && sim.host(0).engine->members() == ~std::uint64_t{0}; },
        t0 + 30000));
    INFO("join of 8 settled in " << sim.now() - t0 << " ms");
    CHECK(sim.max_double_ms() == 0);
    CHECK(sim.now() - t0 <= 10000);

    // 8 leave at once (crashes): owned again within tolerance + 2 periods.
    for (std::size_t i = 8; i < 64; i += 7)
        sim.kill(i);
    t0 = sim.now();
    REQUIRE(run_checked(
        sim, [&] { return sim.all_owned_once(0); }, t0 + 7000 + 20));
    REQUIRE(run_checked(
        sim, [&] { return sim.settled(); }, t0 + 30000));
    CHECK(sim.max_double_ms() == 0);
    for (std::size_t i = 8; i < 64; i += 7)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
    REQUIRE(run_checked(
        sim,
        [&] { return sim.settled() && __builtin_popcountll(sim.host(0).engine->members()) == 64; },
        sim.now() + 30000));
    CHECK(sim.max_double_ms() == 0);

    // 32 | 32 with the same score: a tie. Both halves serve apart; the heal resolves it
    // within a period.
    for (std::size_t i = 0; i < sim.size(); ++i) {
        sim.host(i).accept_rate = 0;
        if (sim.host(i).alive && sim.host(i).engine->priority() > 32)
            sim.set_group(i, 1);
    }
    t0 = sim.now();
    REQUIRE(run_checked(
        sim,
        [&] {
            for (std::size_t i = 0; i < sim.size(); ++i) {
                const auto& h = sim.host(i);
                if (h.alive &&
                    (!h.engine->converged() || __builtin_popcountll(h.engine->members()) != 32))
                    return false;
            }
            return sim.unowned(0) == 0;
        },
        t0 + 30000));
    sim.run_until(sim.now() + 5000);
    const auto h = heal(sim, 0, 40000);
    INFO("heal: two owners for " << h.double_ms << " ms, settled after " << h.settled_after);
    CHECK(h.double_ms <= 1000 + 10);
    CHECK(h.settled_after >= 0);
    CHECK(__builtin_popcountll(sim.host(0).engine->members()) == 64);
    sim.reset_double_stats();
    sim.run_until(sim.now() + 10000);
    CHECK(sim.max_double_ms() == 0);
    CHECK(sim.settled());
}

TEST_CASE("16 hosts on a segment losing 2 % of frames: a long run never owns a bucket twice") {
    Simulator sim(1602, {0.02, 1, 20, 0.0, 20});
    for (std::size_t i = 0; i < 16; ++i)
        sim.add_host(default_config(static_cast<std::uint8_t>(i + 1)));
    REQUIRE(run_checked(
        sim, [&] { return sim.settled(); }, 40000));
    sim.reset_double_stats();
    const auto epoch = sim.host(0).engine->epoch();
    std::int64_t unsettled = 0, unsettled_since = -1;
    run_checked(
        sim,
        [&] {
            const bool s = sim.settled();
            if (!s && unsettled_since < 0)
                unsettled_since = sim.now();
            if (s && unsettled_since >= 0) {
                unsettled = std::max(unsettled, sim.now() - unsettled_since);
                unsettled_since = -1;
            }
            return false;
        },
        sim.now() + 400000);
    INFO("longest unsettled stretch " << unsettled << " ms");
    CHECK(sim.max_double_ms() == 0);
    CHECK(sim.settled());
    CHECK(unsettled <= 5000);
    CHECK(sim.host(0).engine->epoch() == epoch);
}

TEST_CASE("chaos of staged changes: switches amid pauses, crashes, loss and commands") {
    const auto first = env_or("NLB_STAGE_CHAOS_FIRST_SEED", 0);
    const auto count = env_or("NLB_STAGE_CHAOS_SEEDS", 10);
    // Beside the first schedules, three that gave a bucket two owners for 0.7-2.2 s before a
    // peer's death and grace went by its own timing (a switch to shorter heartbeats while it
    // was held up).
    std::vector<std::uint64_t> seeds;
    for (auto seed = first; seed < first + count; ++seed)
        seeds.push_back(seed);
    if (!std::getenv("NLB_STAGE_CHAOS_SEEDS"))
        seeds.insert(seeds.end(), {60, 247, 324});
    int failed = 0;
    for (const auto seed : seeds) {
        StageOps ops(seed);
        auto& sim = ops.sim();
        ops.run_to(30000);
        sim.reset_double_stats();
        ops.run_faults(60);
        const auto during = sim.max_double_ms();
        ops.end_faults();
        const auto ended = sim.now();
        bool healed = false;
        while (sim.now() < ended + 40000 && !(healed = ops.all_in()))
            ops.run_to(sim.now() + 100);
        ops.run_to(sim.now() + 5000);
        const bool ok = during == 0 && sim.max_double_ms() == 0 && ops.mixed_ms() == 0 && healed &&
                        ops.all_in();
        if (!ok) {
            ++failed;
            std::printf("FAIL stage seed %lu double %ld/%ld mixed %ld healed %d\n",
                        (unsigned long)seed, (long)during, (long)sim.max_double_ms(),
                        (long)ops.mixed_ms(), healed ? 1 : 0);
            if (std::getenv("NLB_STAGE_CHAOS_LOG")) {
                std::printf("%s\n", ops.log().c_str());
                for (std::size_t i = 0; i < sim.size(); ++i) {
                    const auto& h = sim.host(i);
                    if (!h.alive)
                        continue;
                    std::printf("boot %zu host %d %s active %016lx staged %016lx members %lx "
                                "epoch %016lx reason %s\n",
                                i, int(h.engine->priority()), to_string(h.engine->state()),
                                (unsigned long)h.engine->active_digest(),
                                (unsigned long)h.engine->staged_digest(),
                                (unsigned long)h.engine->members(),
                                (unsigned long)h.engine->epoch(),
                                to_string(h.engine->refuse_reason()));
                    for (const auto& e : h.events)
                        if (e.at.count() > sim.now() - 50000)
                            std::printf("   %ld %s %d %s\n", (long)e.at.count(), to_string(e.kind),
                                        int(e.host), e.text.c_str());
                }
            }
        }
    }
    CHECK(failed == 0);
}

} // namespace test_staging_faults
