// Random schedules for the watch for a link that fails one way (ReceiveWatch, docs/convergence.md
// "A link that fails one way" and "Asking the segment"), every agent running it and its engine
// told nothing else (no link notice): 2-5 hosts, a gateway on the segment or none, which may
// fall silent for spells; hosts whose port stops delivering to them for 0.2 to 15 periods
// (their frames still leave), crashed and restarted (at once or later; a port still dead stays
// so for the new boot), agents paused, operators' commands; spells of loss on one path, segment
// blackouts of up to four periods (the gateway's answers and clients' frames lost too; the
// second path as well where a gateway's silence takes every host down meanwhile); clients'
// frames seldom, often or never. Properties: no bucket ever has two serving owners; once the
// faults end (every port delivering, the gateway answering if there is one, a client's frame
// or two) the cluster settles within 40 periods and stays so for 5, every engine's link up.
// The schedules leave out what the watch cannot tell by design (OneWayChaos::may_go_deaf).
// Of seeds 0-999, the change as first committed failed 36, every one a host restarted behind
// a dead port (or whose port died before it heard a peer), which formed an epoch alone beside
// the cluster (11, 21 below); a heartbeat lost just before a port died (the watch ended by the
// gateway's answer to the look it brought) was 2 of 400 of an earlier draft of these
// schedules (test_one_way_link.cpp has it deterministically). Then seed 8263 found a host
// back from its link down alone taken for old beside a new boot (an engine fix). Seeds 0-9999
// now pass but 7516 (7 ms; 73 with the change as first committed): a host deaf to the
// segment (a spell) beside a mute one and two stopped, which split in two epochs; the watch
// does nothing in the 10 s before (no link down or up), and test_chaos.cpp's deaf and mute
// spells are that case's home.
// NLB_ONE_WAY_CHAOS_SEEDS=N (default 12) schedules from NLB_ONE_WAY_CHAOS_FIRST_SEED (default 0);
// NLB_ONE_WAY_CHAOS_LOG=1 prints a failed schedule's log.
#include <catch2/catch.hpp>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <functional>
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

namespace test_one_way_chaos {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKey(32, 0x5d);

EngineConfig config_for(std::uint8_t priority, std::size_t hosts) {
    return chaos::keyed_with_peers(priority, hosts, kKey);
}

using chaos::Spell;

class OneWayChaos {
  public:
    explicit OneWayChaos(std::uint64_t seed) : rng_(seed * 7919 + 11), drops_(seed * 53 + 3) {
        n_ = 2 + pick(4); // 2..5 hosts
        net_.loss = pick(3) * 0.02;
        net_.delay_min_ms = 1;
        net_.delay_max_ms = 2 + static_cast<std::int64_t>(pick(30));
        net_.linger_ms = pick(2) ? static_cast<std::int64_t>(pick(60)) : 0;
        gateway_ = pick(4) != 0;
        clients_ = pick(3); // 0: never during the faults, 1: seldom, 2: often
        sim_.emplace(seed, net_);
        sim_->receive_watch = true;
        sim_->link_notice = false;
        sim_->gateway = gateway_;
        for (std::size_t i = 0; i < n_; ++i)
            index_[static_cast<std::uint8_t>(i + 1)] = sim_->add_host(config_for(i + 1, n_));
        note() << "hosts=" << n_ << " loss=" << net_.loss << " delay<=" << net_.delay_max_ms
               << " linger=" << net_.linger_ms << (gateway_ ? " gateway" : " no gateway")
               << " clients=" << clients_;
        sim_->drop = [this](std::size_t from, std::size_t to, const auto&) {
            return dark() || dropped(from, to, false);
        };
        sim_->drop_contact = [this](std::size_t from, std::size_t to, const auto&) {
            return (dark() && dark_contact_) || dropped(from, to, true);
        };
    }

    Simulator& sim() { return *sim_; }
    std::string log() const { return log_.str(); }

    bool all_in() {
        for (const auto& [priority, i] : index_)
            if (!sim_->host(i).engine->link_up())
                return false;
        return chaos::all_converged(*sim_, index_);
    }

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
        dark_until_ = -1;
        // Whatever was still due happens now: restarts, resumes, ports delivering again.
        while (!due_.empty()) {
            auto it = due_.begin();
            auto what = std::move(it->second);
            due_.erase(it);
            what();
        }
        silent_until_ = -1;
        sim_->gateway_silent = false;
        for (auto& [priority, i] : index_)
            if (drained_.started_at_end(priority, sim_->host(i).engine->state()))
                sim_->command(i, {CommandKind::start});
        note() << "faults end";
        sim_->client_frame();
        run_to(sim_->now() + 2 * kPeriod);
        sim_->client_frame();
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
    bool dark() const { return sim_->now() < dark_until_; }

    bool dropped(std::size_t from, std::size_t to, bool contact) {
        // Its own generator: what the engines send must not change the schedule's draws.
        return chaos::spell_drops(spells_, priority_of(from), priority_of(to), contact, sim_->now(),
                                  drops_);
    }

    // The gateway answers unless told to be silent or the segment is dark.
    void gateway_state() { sim_->gateway_silent = sim_->now() < silent_until_ || dark(); }

    void at(std::int64_t when, std::function<void()> what) { due_.emplace(when, std::move(what)); }

    void advance(std::int64_t t) {
        while (!due_.empty() && due_.begin()->first <= t) {
            run_to(due_.begin()->first);
            auto it = due_.begin();
            auto what = std::move(it->second);
            due_.erase(it);
            what();
            gateway_state();
        }
        run_to(t);
        gateway_state();
    }

    void restart(std::uint8_t priority) {
        note() << "restart " << int(priority) << (deaf_.count(priority) ? " (port dead)" : "");
        drained_.restarted(priority);
        busy_.erase(priority);
        crashed_.erase(priority);
        const auto i = sim_->add_host(config_for(priority, n_), false);
        index_[priority] = i;
        if (deaf_.count(priority))
            sim_->set_receiving(i, false);
        sim_->command(i, {CommandKind::start});
    }

    // Whether the port of host `priority` may stop delivering now: not where the watch, by
    // design, cannot tell (docs/convergence.md, "A link that fails one way"). A host whose
    // receive path was proven (a client's frame, the gateway's answer) while it heard no peer
    // is watched again only once it hears one: a port that dies then goes unnoticed. So a
    // host whose every peer crashed, and one whose port delivered again (or whose segment
    // came back from the dark) a moment before it died again: the gateway's answer in that
    // moment ended its watch. Without a gateway the watch applies only to a host that had two
    // peers or more in its view: two ports dead at once in a cluster of two (or of more,
    // peers crashed) leave two hosts that hear nobody and serve, a partition.
    bool may_go_deaf(std::uint8_t priority) {
        const auto now = sim_->now();
        const auto healed = healed_at_.find(priority);
        if ((healed != healed_at_.end() && now < healed->second + 3 * kPeriod) ||
            now < dark_until_ + 3 * kPeriod)
            return false;
        std::size_t others = 0;
        for (std::size_t p = 1; p <= n_; ++p)
            others += p != priority && !crashed_.count(static_cast<std::uint8_t>(p));
        if (gateway_)
            return others >= 1;
        if (others < 2 || !deaf_.empty() || busy_.count(priority))
            return false;
        const auto& engine = *sim_->host(index_.at(priority)).engine;
        return engine.converged() && engine.link_up() && std::popcount(engine.view()) >= 3;
    }

    void receiving_again(std::uint8_t priority) {
        note() << "port of " << int(priority) << " delivers again";
        deaf_.erase(priority);
        healed_at_[priority] = sim_->now();
        sim_->set_receiving(index_[priority], true);
    }

    void act() {
        const auto priority = static_cast<std::uint8_t>(1 + pick(n_));
        const auto i = index_[priority];
        const auto now = sim_->now();
        const auto len = [&](std::int64_t lo, std::int64_t hi) {
            return lo + static_cast<std::int64_t>(pick(static_cast<std::size_t>(hi - lo)));
        };
        const auto draw = [this](std::size_t n) { return pick(n); };
        const auto say = [this]() -> std::ostream& { return note(); };
        // Clients' frames come between the actions, at the schedule's rate.
        if ((clients_ == 2 || (clients_ == 1 && pick(4) == 0)) && !dark()) {
            note() << "a client's frame";
            sim_->client_frame();
        }
        switch (pick(12)) {
        case 0:
        case 1:
        case 2: {
            if (deaf_.count(priority) || !may_go_deaf(priority))
                break;
            const auto to =
                now + (pick(3) ? len(kPeriod / 5, 6 * kPeriod) : len(kPeriod / 5, 15 * kPeriod));
            note() << "port of " << int(priority) << " delivers nothing until " << to;
            deaf_.insert(priority);
            sim_->set_receiving(i, false);
            at(to, [this, priority] { receiving_again(priority); });
            break;
        }
        case 3:
        case 4: {
            // Without a gateway a boot behind a dead port hears nobody, and the watch applies
            // only to a host that had two peers (docs/convergence.md, "Asking the segment").
            if (busy_.count(priority) || (!gateway_ && deaf_.count(priority)))
                break;
            const auto when = now + (pick(2) ? len(10, kPeriod) : len(kPeriod, 12 * kPeriod));
            note() << "crash " << int(priority) << ", restart at " << when;
            busy_.insert(priority);
            crashed_.insert(priority);
            sim_->kill(i);
            at(when, [this, priority] { restart(priority); });
            break;
        }
        case 5: {
            if (busy_.count(priority))
                break;
            const auto when = now + (pick(2) ? len(50, 2 * kPeriod) : len(kPeriod, 8 * kPeriod));
            note() << "pause " << int(priority) << " until " << when;
            busy_.insert(priority);
            sim_->pause(i);
            at(when, [this, priority] {
                note() << "resume " << int(priority);
                busy_.erase(priority);
                sim_->resume(index_[priority]);
            });
            break;
        }
        case 6:
            if (!dark()) // with the second path dark too, a spell would be a partition
                chaos::draw_spell(spells_, priority, now, kPeriod, draw, len, say);
            break;
        case 7:
            if (!gateway_)
                break;
            silent_until_ = now + len(kPeriod / 2, 10 * kPeriod);
            note() << "gateway silent until " << silent_until_;
            at(silent_until_, [this] { note() << "gateway answers again"; });
            break;
        case 8:
            if (now < dark_until_ + 3 * kPeriod)
                break;
            dark_until_ = now + len(kPeriod / 5, 4 * kPeriod);
            // Both paths, every host cut off from every other a moment, where a gateway's
            // silence takes every host down meanwhile; not without one, nor while a spell is
            // in force (a host that hears its peers on one path only then hears none): that
            // would be a partition, which serves twice by design until it heals.
            dark_contact_ = gateway_;
            for (const auto& spell : spells_)
                dark_contact_ = dark_contact_ && spell.to <= now;
            note() << "segment dark until " << dark_until_
                   << (dark_contact_ ? ", the second path too" : "");
            at(dark_until_, [this] { note() << "segment delivers again"; });
            break;
        case 9: {
            if (busy_.count(priority))
                break;
            chaos::draw_command(*sim_, i, priority, draw, say, drained_);
            break;
        }
        default: // quiet
            break;
        }
        gateway_state();
    }

    std::mt19937_64 rng_;
    std::mt19937_64 drops_;
    std::size_t n_ = 0;
    bool gateway_ = false;
    std::size_t clients_ = 0;
    NetworkParams net_;
    std::optional<Simulator> sim_;
    std::map<std::uint8_t, std::size_t> index_;
    chaos::DrainStops drained_;
    std::multimap<std::int64_t, std::function<void()>> due_;
    std::set<std::uint8_t> deaf_;                    // ports that deliver nothing
    std::set<std::uint8_t> busy_;                    // crashed or paused
    std::set<std::uint8_t> crashed_;                 // crashed, not yet restarted
    std::map<std::uint8_t, std::int64_t> healed_at_; // when each port delivered again
    std::vector<Spell> spells_;
    std::int64_t silent_until_ = -1, dark_until_ = -1;
    bool dark_contact_ = false;
    bool doubled_ = false;
    std::ostringstream log_;
};

struct Result {
    std::int64_t double_during = 0, double_after = 0;
    bool healed = false;
    std::string log;
};

Result run_schedule(std::uint64_t seed) {
    OneWayChaos chaos(seed);
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
    // Settled within 40 periods, and still 5 periods later.
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
    const auto r = run_schedule(seed);
    const bool ok = r.double_during == 0 && r.double_after == 0 && r.healed;
    if (!ok) {
        std::printf("ONE-WAY-CHAOS FAIL seed %lu double %ld/%ld healed %d\n",
                    static_cast<unsigned long>(seed), static_cast<long>(r.double_during),
                    static_cast<long>(r.double_after), r.healed ? 1 : 0);
        if (std::getenv("NLB_ONE_WAY_CHAOS_LOG"))
            std::printf("%s\n", r.log.c_str());
        std::fflush(stdout);
    }
    return ok;
}

} // namespace

TEST_CASE("one-way chaos: ports that stop delivering, crashes, a gateway that answers or not: "
          "never two owners, and the cluster settles") {
    CHECK(chaos::failed_schedules("NLB_ONE_WAY_CHAOS_FIRST_SEED", "NLB_ONE_WAY_CHAOS_SEEDS", 12,
                                  schedule_holds) == 0);
}

// The schedules that found defects (each with two owners before its fix): a host restarted
// behind a dead port, unwatched (11: 636 ms, 21: 1,654 ms); a host back from its link down
// alone, beside a new boot, agreeing without a paused peer (8263: 24 ms).
TEST_CASE("one-way chaos: the schedules that found defects") {
    for (std::uint64_t seed : {11, 21, 8263})
        CHECK(schedule_holds(seed));
}

} // namespace test_one_way_chaos
