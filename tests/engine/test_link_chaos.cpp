// Random schedules with link flaps (ConvergenceEngine::on_link, docs/convergence.md "Link
// down"): a host's own link down for 0.2 to 20 periods, noticed by its agent at once or up to
// half a period late, on random hosts, beside the usual faults: loss on the segment and spells
// of it on one path, agent pauses (SIGSTOP), crashes and restarts (a restart with its link
// down starts so), clocks up to 2 % apart, operators stopping, draining and starting hosts,
// weight changes. 2-6 hosts. Properties: no bucket ever has two serving owners; once the
// faults end (every link up) the cluster settles within 40 periods.
// NLB_LINK_CHAOS_SEEDS=N (default 12) schedules from NLB_LINK_CHAOS_FIRST_SEED (default 0).
// NLB_LINK_CHAOS_LOG=1 prints a failed schedule's log; NLB_LINK_CHAOS_COMPARE=1 replays a
// failed one with the engine never told of the link (the build before the change): the
// schedule's draws do not depend on what the engines do, so it is the same schedule.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "chaos_schedule.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_link_chaos {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKey(32, 0x4e);

EngineConfig config_for(std::uint8_t priority, std::size_t hosts) {
    return chaos::keyed_with_peers(priority, hosts, kKey);
}

using chaos::Spell;

class LinkChaos {
  public:
    LinkChaos(std::uint64_t seed, bool notice) : rng_(seed * 6007 + 29), drops_(seed * 31 + 5) {
        n_ = 2 + pick(5); // 2..6 hosts
        net_.loss = pick(3) * 0.02;
        net_.delay_min_ms = 1;
        net_.delay_max_ms = 2 + static_cast<std::int64_t>(pick(30));
        net_.linger_ms = pick(2) ? static_cast<std::int64_t>(pick(60)) : 0;
        sim_.emplace(seed, net_);
        sim_->link_notice = notice;
        for (std::size_t i = 0; i < n_; ++i)
            index_[static_cast<std::uint8_t>(i + 1)] = sim_->add_host(config_for(i + 1, n_));
        note() << "hosts=" << n_ << " loss=" << net_.loss << " delay<=" << net_.delay_max_ms
               << " linger=" << net_.linger_ms;
        sim_->drop = [this](std::size_t from, std::size_t to, const auto&) {
            return dropped(from, to, false);
        };
        sim_->drop_contact = [this](std::size_t from, std::size_t to, const auto&) {
            return dropped(from, to, true);
        };
    }

    Simulator& sim() { return *sim_; }
    std::string log() const { return log_.str(); }
    bool all_in() { return chaos::all_converged(*sim_, index_); }

    void run_faults(std::int64_t periods) {
        const auto end = sim_->now() + periods * kPeriod;
        while (sim_->now() < end) {
            const auto next = sim_->now() + 300 + static_cast<std::int64_t>(pick(2500));
            advance(std::min(next, end));
            if (sim_->now() < end)
                act();
        }
    }

    void end_faults() {
        spells_.clear();
        for (auto it = pending_.begin(); it != pending_.end();) {
            const auto [priority, p] = *it;
            it = pending_.erase(it);
            if (p.what == Pending::restart)
                restart(priority);
            else
                resume(priority);
        }
        for (auto it = link_up_at_.begin(); it != link_up_at_.end();) {
            const auto priority = it->first;
            it = link_up_at_.erase(it);
            link_up(priority);
        }
        for (auto& [priority, i] : index_) {
            sim_->set_host_rules(i, std::vector<HostRuleParams>(1));
            if (drained_.started_at_end(priority, sim_->host(i).engine->state()))
                sim_->command(i, {CommandKind::start});
        }
        note() << "faults end";
    }

    // Runs to `t`, noting when some bucket gets two owners and when none has.
    void run_to(std::int64_t t) {
        sim_->run_until(
            [&] {
                const bool doubled = sim_->double_since() >= 0;
                if (doubled != doubled_) {
                    doubled_ = doubled;
                    if (doubled)
                        note() << "two owners: "
                               << chaos::owners_of_a_doubled_bucket(*sim_, 30 * kPeriod);
                    else
                        note() << "one owner each again";
                }
                return false;
            },
            t);
    }

  private:
    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
    std::ostream& note() { return log_ << "\nt=" << sim_->now() << " "; }
    std::uint8_t priority_of(std::size_t boot) const { return chaos::priority_of(index_, boot); }

    bool dropped(std::size_t from, std::size_t to, bool contact) {
        // Its own generator: what the engines send must not change the schedule's draws.
        return chaos::spell_drops(spells_, priority_of(from), priority_of(to), contact, sim_->now(),
                                  drops_);
    }

    void advance(std::int64_t t) {
        while (true) {
            std::optional<std::int64_t> due;
            for (const auto& [priority, p] : pending_)
                if (!due || p.at < *due)
                    due = p.at;
            for (const auto& [priority, up] : link_up_at_)
                if (!due || up.at < *due)
                    due = up.at;
            if (!due || *due > t)
                break;
            run_to(*due);
            for (auto it = link_up_at_.begin(); it != link_up_at_.end();) {
                if (it->second.at > sim_->now()) {
                    ++it;
                    continue;
                }
                const auto priority = it->first;
                it = link_up_at_.erase(it);
                link_up(priority);
            }
            for (auto it = pending_.begin(); it != pending_.end();) {
                const auto [priority, p] = *it;
                if (p.at > sim_->now()) {
                    ++it;
                    continue;
                }
                it = pending_.erase(it);
                if (p.what == Pending::restart)
                    restart(priority);
                else
                    resume(priority);
            }
        }
        run_to(t);
    }

    void resume(std::uint8_t priority) {
        note() << "resume " << int(priority);
        sim_->resume(index_[priority]);
    }

    void link_up(std::uint8_t priority) {
        const auto notice = static_cast<std::int64_t>(pick(501));
        note() << "link of " << int(priority) << " up, noticed after " << notice;
        down_.erase(priority);
        sim_->set_link(index_[priority], true, notice);
    }

    void restart(std::uint8_t priority) {
        note() << "restart " << int(priority) << (down_.count(priority) ? " (link down)" : "");
        drained_.restarted(priority);
        const auto i = sim_->add_host(config_for(priority, n_), false);
        index_[priority] = i;
        if (down_.count(priority))
            sim_->set_link(i, false, 0); // its agent reads the link at its first tick
        sim_->command(i, {CommandKind::start});
    }

    bool busy(std::uint8_t priority) const { return pending_.count(priority) != 0; }

    void act() {
        const auto priority = static_cast<std::uint8_t>(1 + pick(n_));
        const auto i = index_[priority];
        const auto now = sim_->now();
        const auto len = [&](std::int64_t lo, std::int64_t hi) {
            return lo + static_cast<std::int64_t>(pick(static_cast<std::size_t>(hi - lo)));
        };
        // For the schedule pieces the chaos tests share (chaos_schedule.hpp).
        const auto draw = [this](std::size_t n) { return pick(n); };
        const auto say = [this]() -> std::ostream& { return note(); };
        switch (pick(12)) {
        case 0:
        case 1:
        case 2: {
            if (down_.count(priority))
                break;
            const auto length =
                pick(3) ? len(kPeriod / 5, 6 * kPeriod) : len(kPeriod / 5, 20 * kPeriod);
            const auto notice = static_cast<std::int64_t>(pick(501));
            down_.insert(priority);
            link_up_at_[priority] = {now + length};
            note() << "link of " << int(priority) << " down until " << now + length
                   << ", noticed after " << notice;
            sim_->set_link(i, false, notice);
            break;
        }
        case 3: {
            chaos::draw_spell(spells_, priority, now, kPeriod, draw, len, say);
            break;
        }
        case 4:
            if (busy(priority))
                break;
            pending_[priority] = {now +
                                      (pick(2) ? len(50, 2 * kPeriod) : len(kPeriod, 9 * kPeriod)),
                                  Pending::resume};
            note() << "pause " << int(priority) << " until " << pending_[priority].at;
            sim_->pause(i);
            break;
        case 5:
            if (busy(priority))
                break;
            pending_[priority] = {now + (pick(2) ? len(10, kPeriod) : len(kPeriod, 12 * kPeriod)),
                                  Pending::restart};
            note() << "crash " << int(priority) << ", restart at " << pending_[priority].at;
            sim_->kill(i);
            break;
        case 6:
            if (busy(priority))
                break;
            chaos::draw_clock(*sim_, i, priority, draw, say);
            break;
        case 7:
        case 8: {
            if (busy(priority))
                break;
            chaos::draw_command(*sim_, i, priority, draw, say, drained_);
            break;
        }
        case 9: {
            if (busy(priority))
                break;
            std::vector<HostRuleParams> params(1);
            params[0].load_weight =
                pick(4) == 0 ? HostRuleParams{}.load_weight : static_cast<std::uint8_t>(pick(101));
            note() << "weight " << int(params[0].load_weight) << " on " << int(priority);
            sim_->set_host_rules(i, params);
            break;
        }
        default:
            break;
        }
    }

    std::mt19937_64 rng_;
    std::mt19937_64 drops_;
    std::size_t n_ = 0;
    NetworkParams net_;
    std::optional<Simulator> sim_;
    std::map<std::uint8_t, std::size_t> index_;
    chaos::DrainStops drained_;
    struct Pending {
        std::int64_t at;
        enum What { resume, restart } what;
    };
    std::map<std::uint8_t, Pending> pending_;
    struct LinkUp {
        std::int64_t at;
    };
    std::map<std::uint8_t, LinkUp> link_up_at_;
    std::set<std::uint8_t> down_;
    std::vector<Spell> spells_;
    bool doubled_ = false;
    std::ostringstream log_;
};

struct Result {
    std::int64_t double_during = 0, double_after = 0;
    bool healed = false;
    std::string log;
};

Result run_schedule(std::uint64_t seed, bool notice) {
    LinkChaos chaos(seed, notice);
    auto& sim = chaos.sim();
    Result r;
    if (!sim.run_until([&] { return chaos.all_in(); }, 60 * kPeriod)) {
        r.log = "never settled at the start";
        return r;
    }
    sim.reset_double_stats();
    chaos.run_faults(80);
    r.double_during = sim.max_double_ms();
    chaos.end_faults();
    // Settled within 40 periods, and still 5 periods later: a host whose deafness lasted to
    // the end may be refused just after the cluster first looked settled, and rejoin later.
    const auto deadline = sim.now() + 40 * kPeriod;
    while (!r.healed && sim.run_until([&] { return chaos.all_in(); }, deadline)) {
        chaos.run_to(sim.now() + 5 * kPeriod);
        r.healed = chaos.all_in();
    }
    r.double_after = sim.max_double_ms();
    r.log = chaos.log();
    return r;
}

bool schedule_holds(std::uint64_t seed) {
    const auto r = run_schedule(seed, true);
    const bool ok = r.double_during == 0 && r.double_after == 0 && r.healed;
    if (!ok) {
        std::printf("LINK-CHAOS FAIL seed %lu double %ld/%ld healed %d\n",
                    static_cast<unsigned long>(seed), static_cast<long>(r.double_during),
                    static_cast<long>(r.double_after), r.healed ? 1 : 0);
        if (std::getenv("NLB_LINK_CHAOS_COMPARE")) {
            const auto b = run_schedule(seed, false);
            std::printf("LINK-CHAOS seed %lu without the notice: double %ld/%ld healed %d\n",
                        static_cast<unsigned long>(seed), static_cast<long>(b.double_during),
                        static_cast<long>(b.double_after), b.healed ? 1 : 0);
        }
        if (std::getenv("NLB_LINK_CHAOS_LOG"))
            std::printf("%s\n", r.log.c_str());
        std::fflush(stdout);
    }
    return ok;
}

} // namespace

// Beyond the default range, 2373 failed the settling check: a host deaf until the faults
// ended was refused for it a moment after the cluster first looked settled, and rejoined
// later (the check now waits for a settled cluster that stays so for 5 periods).
TEST_CASE("link chaos: link flaps among the usual faults never give a bucket two owners, and "
          "the cluster settles") {
    CHECK(chaos::failed_schedules("NLB_LINK_CHAOS_FIRST_SEED", "NLB_LINK_CHAOS_SEEDS", 12,
                                  schedule_holds) == 0);
}

// Two hosts back from their own link down (or one of them just restarted) heard each other
// and formed an epoch within a period, without the host still cut off by its own link, before
// its bound had passed: 70, 143 and 309 ms of two owners (seeds 721, 2479, 4669). Back after
// letting go, a host is young again for its start wait, and a group of young hosts waits.
// A host that started with its link down served alone once the start wait had run from its
// start, though it had listened for only part of it (seed 6637: 111 ms): alone, it waits from
// the link's return.
TEST_CASE("link chaos: hosts back from their own link down agree as hosts that just started") {
    for (std::uint64_t seed : {721, 2479, 4669, 6637})
        CHECK(schedule_holds(seed));
}

} // namespace test_link_chaos
