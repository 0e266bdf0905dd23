// Random schedules of many faults at once, on a cluster whose segment already loses and delays
// frames: deaf and mute spells (the second path intact), loss bursts on either path, agent
// pauses of every length, crashes and restarts, clocks that run fast or slow, and operators
// stopping, draining and starting hosts. The single-fault tests (test_faults.cpp) show each
// fault handled alone; what a real segment brings is several, overlapping. Two properties,
// whatever the schedule:
//   - safety: no bucket ever has two serving owners (the simulator watches every instant);
//   - liveness: once the faults end, every host rejoins and the cluster settles, each bucket
//     owned once, within a bound.
// Partitions are left out on purpose: two halves that cannot hear each other both serve until
// they meet, by design (test_convergence.cpp, "partition and heal"). So is loss on both paths
// at once (a spell on the segment beside one on the second path), which is a partition
// between the two hosts for as long as it lasts (docs/convergence.md, "Chaos"), but for one
// kind: an outage, a host's own frames lost on both paths for less than a tolerance and then
// a pause (a VM's last frames before a live migration's stop), unless nobody confirms its
// frames (it serves alone: then it is a partition too).
// NLB_CHAOS_SEEDS=N runs N schedules (default 24; scripts/bench/chaos.sh runs thousands).
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "chaos_schedule.hpp"
#include "heartbeat_codec.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_chaos {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKey(32, 0x3c);

EngineConfig config_for(std::uint8_t priority, std::size_t hosts) {
    return chaos::keyed_with_peers(priority, hosts, kKey);
}

// A fault on the way frames travel, in force over [from, to).
using chaos::Spell;

// One schedule: what happened, for the failure message.
class Chaos {
  public:
    explicit Chaos(std::uint64_t seed) : rng_(seed * 7919 + 13) {
        n_ = 3 + pick(6); // 3..8 hosts
        net_.loss = pick(3) * 0.02;
        net_.delay_min_ms = 1;
        net_.delay_max_ms = 2 + static_cast<std::int64_t>(pick(40));
        net_.linger_ms = pick(2) ? static_cast<std::int64_t>(pick(60)) : 0;
        sim_.emplace(seed, net_);
        for (std::size_t i = 0; i < n_; ++i)
            index_[static_cast<std::uint8_t>(i + 1)] = sim_->add_host(config_for(i + 1, n_));
        note() << "hosts=" << n_ << " loss=" << net_.loss << " delay<=" << net_.delay_max_ms
               << " linger=" << net_.linger_ms;
        sim_->drop = [this](std::size_t from, std::size_t to, const auto& frame) {
            const bool lost = dropped(from, to, false);
            trace(from, to, frame, false, lost);
            return lost;
        };
        sim_->drop_contact = [this](std::size_t from, std::size_t to, const auto& frame) {
            const bool lost = dropped(from, to, true);
            trace(from, to, frame, true, lost);
            return lost;
        };
    }

    Simulator& sim() { return *sim_; }
    std::string log() const { return log_.str(); }

    // Faults for `periods` periods, one every 0.5-3 periods.
    void run_faults(std::int64_t periods) {
        const auto end = sim_->now() + periods * kPeriod;
        while (sim_->now() < end) {
            const auto next = sim_->now() + 500 + static_cast<std::int64_t>(pick(2500));
            advance(std::min(next, end));
            if (sim_->now() < end)
                act();
        }
    }

    // The faults end: every spell lifted, every paused agent resumed, every crashed one
    // started again, every host told to start.
    void end_faults() {
        spells_.clear();
        finish_due(std::numeric_limits<std::int64_t>::max(), true);
        for (auto& [priority, i] : index_) {
            if (drained_.started_at_end(priority, sim_->host(i).engine->state()))
                sim_->command(i, {CommandKind::start});
        }
        note() << "faults end";
    }

    bool all_in() { return chaos::all_converged(*sim_, index_); }

  private:
    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

    // The schedule's log: each line starts with the time.
    std::ostream& note() { return log_ << "\nt=" << sim_->now() << " "; }

    std::uint8_t priority_of(std::size_t boot) const { return chaos::priority_of(index_, boot); }

    // NLB_CHAOS_TRACE=FROM,TO (ms): every heartbeat sent in that span, on stderr, for a
    // schedule that failed: once per frame on the segment (whoever gets it), once per
    // receiver on the second path, and whether it was lost there. It draws nothing from the
    // schedule's generator: a traced run is the run that failed.
    void trace(std::size_t from, std::size_t to, const std::vector<std::uint8_t>& frame,
               bool contact, bool lost) {
        static const char* env = std::getenv("NLB_CHAOS_TRACE");
        std::int64_t lo = 0, hi = 0;
        if (!env || std::sscanf(env, "%ld,%ld", &lo, &hi) != 2 || sim_->now() < lo ||
            sim_->now() > hi)
            return;
        const auto d = decode_heartbeat(frame);
        if (!d.heartbeat)
            return;
        const auto& hb = *d.heartbeat;
        const Traced key{from, hb.nonce, hb.sequence};
        if (!contact && key == last_traced_)
            return;
        if (!contact)
            last_traced_ = key;
        std::fprintf(
            stderr,
            "%ld boot %zu host %d%s %s seq %lu view %lx digest %lx claim %lx base %lx "
            "outside %lx flags %x want %lx\n",
            static_cast<long>(sim_->now()), from, hb.priority,
            contact ? (" to boot " + std::to_string(to) + (lost ? " (lost)" : "") +
                       " by the second path")
                          .c_str()
                    : "",
            to_string(hb.state), static_cast<unsigned long>(hb.sequence),
            static_cast<unsigned long>(hb.view), static_cast<unsigned long>(hb.view_digest),
            static_cast<unsigned long>(hb.claim), static_cast<unsigned long>(hb.base_digest),
            static_cast<unsigned long>(hb.outside_owners), hb.flags,
            static_cast<unsigned long>(hb.want));
    }

    bool dropped(std::size_t from, std::size_t to, bool contact) {
        return chaos::spell_drops(spells_, priority_of(from), priority_of(to), contact, sim_->now(),
                                  rng_);
    }

    // Runs to `t`, resuming paused agents and restarting crashed ones when their time comes.
    void advance(std::int64_t t) {
        while (true) {
            std::optional<std::int64_t> due;
            for (const auto& [priority, p] : pending_)
                if (!due || p.at < *due)
                    due = p.at;
            if (!due || *due > t)
                break;
            run_to(*due);
            finish_due(sim_->now());
        }
        run_to(t);
    }

    // Pauses the agents whose outage ended, resumes the paused ones, then restarts the
    // crashed ones, whose time came by `upto`. At the faults' end (`ending`) an outage's
    // pause is dropped: only what is under way finishes.
    void finish_due(std::int64_t upto, bool ending = false) {
        for (const auto what : {Pending::freeze, Pending::resume, Pending::restart})
            for (auto it = pending_.begin(); it != pending_.end();) {
                const auto [priority, p] = *it;
                if (p.what != what || p.at > upto) {
                    ++it;
                    continue;
                }
                it = pending_.erase(it);
                if (what == Pending::restart) {
                    restart(priority);
                } else if (what == Pending::resume) {
                    note() << "resume " << int(priority);
                    sim_->resume(index_[priority]);
                } else if (!ending &&
                           sim_->host(index_[priority]).engine->confirmed_until().by == 0) {
                    // Nobody confirms its frames (it serves alone, or its peers do not hear
                    // it): silent since its outage, paused it would be a partition.
                    note() << "no pause for " << int(priority) << ": nobody confirms its frames";
                } else if (!ending) {
                    pending_[priority] = {p.at + p.length, Pending::resume, 0};
                    note() << "pause " << int(priority) << " after its outage, until "
                           << pending_[priority].at;
                    sim_->pause(index_[priority]);
                }
            }
    }

    // Runs to `t`, noting in the log when some bucket gets two owners and when none has.
    void run_to(std::int64_t t) {
        sim_->run_until(
            [&] {
                const bool doubled = sim_->double_since() >= 0;
                if (doubled != doubled_) {
                    doubled_ = doubled;
                    if (doubled)
                        note() << "two owners: " << owners_of_a_doubled_bucket();
                    else
                        note() << "one owner each again";
                }
                return false;
            },
            t);
    }

    std::string owners_of_a_doubled_bucket() {
        return chaos::owners_of_a_doubled_bucket(*sim_, 8 * kPeriod);
    }

    void restart(std::uint8_t priority) {
        note() << "restart " << int(priority);
        drained_.restarted(priority);
        index_[priority] = sim_->add_host(config_for(priority, n_));
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
        switch (pick(10)) {
        case 0:
        case 1: {
            chaos::draw_spell(spells_, priority, now, kPeriod, draw, len, say);
            break;
        }
        case 2:
        case 3:
            if (busy(priority))
                break;
            // From a scheduler hiccup to a VM paused for longer than the tolerance.
            pending_[priority] = {now +
                                      (pick(2) ? len(50, 2 * kPeriod) : len(kPeriod, 9 * kPeriod)),
                                  Pending::resume, 0};
            note() << "pause " << int(priority) << " until " << pending_[priority].at;
            sim_->pause(i);
            break;
        case 4:
            if (busy(priority))
                break;
            // Crashed; restarted by systemd at once, or later, or much later.
            pending_[priority] = {now + (pick(2) ? len(10, kPeriod) : len(kPeriod, 12 * kPeriod)),
                                  Pending::restart, 0};
            note() << "crash " << int(priority) << ", restart at " << pending_[priority].at;
            sim_->kill(i);
            break;
        case 5:
            if (busy(priority))
                break;
            chaos::draw_clock(*sim_, i, priority, draw, say);
            break;
        case 6:
        case 7: {
            if (busy(priority))
                break;
            chaos::draw_command(*sim_, i, priority, draw, say, drained_);
            break;
        }
        case 8: {
            if (busy(priority))
                break;
            // A VM frozen for a live migration, or an agent paused, just after its own
            // frames stopped leaving for a while: its peers heard it last well before the
            // pause, and must not take its buckets while its watchdog still lets it serve.
            const auto end = now + len(kPeriod / 2, 4 * kPeriod);
            spells_.push_back({Spell::outage, priority, 1.0, now, end});
            pending_[priority] = {end, Pending::freeze,
                                  pick(2) ? len(50, 2 * kPeriod) : len(kPeriod, 9 * kPeriod)};
            note() << "outage on " << int(priority) << " until " << end << ", then a pause of "
                   << pending_[priority].length;
            break;
        }
        default:
            break; // a quiet spell
        }
    }

    std::mt19937_64 rng_;
    std::size_t n_ = 0;
    NetworkParams net_;
    std::optional<Simulator> sim_;
    std::map<std::uint8_t, std::size_t> index_; // priority -> the simulator's host (its boot)
    chaos::DrainStops drained_;
    // A paused agent's resume, a crashed one's restart or the pause that ends an outage, at
    // most one per host (busy).
    struct Pending {
        std::int64_t at;
        enum What { freeze, resume, restart } what;
        std::int64_t length; // freeze: how long the pause lasts
    };
    std::map<std::uint8_t, Pending> pending_;
    std::vector<Spell> spells_;
    bool doubled_ = false;
    struct Traced {
        std::size_t from = 0;
        std::uint64_t nonce = 0, sequence = 0;
        bool operator==(const Traced&) const = default;
    };
    Traced last_traced_;
    std::ostringstream log_;
};

} // namespace

TEST_CASE("chaos: overlapping faults never give a bucket two owners, and the cluster heals") {
    const auto first = chaos::env_or("NLB_CHAOS_FIRST_SEED", 0);
    std::vector<std::uint64_t> seeds;
    for (std::uint64_t seed = first; seed < first + chaos::env_or("NLB_CHAOS_SEEDS", 24); ++seed)
        seeds.push_back(seed);
    // Schedules that once failed (docs/convergence.md, "Chaos"), run beside the first ones
    // unless a span is asked for. Since outages were added (2026-12-05): 11 (a peer dead for
    // less than a period took buckets beyond its last claim), 23 (a restarted host took from
    // a peer in grace at others), 152 (a peer heard but not proven paused a restarted host's
    // partner), 500 (a live peer's late frames hid what it installed), 1118 (a peer paused
    // for less than a stall left out of the confirmations' bound), 1370 (peers heard without
    // proof, not named to a restarted host), 3874 (a view's members' bounds taken with their
    // grace, which only the taker applies), 4641 (installed on a member's frame older than
    // the view, which that member had left with its frames lost), 5103 (a host paused right
    // after the install that ended its recovery from a stall, revived unbounded on resume),
    // 8795 (a late peer named to nobody: a host that never heard it took from it).
    if (!std::getenv("NLB_CHAOS_FIRST_SEED"))
        seeds.insert(seeds.end(), {11, 23, 152, 500, 1118, 1370, 3874, 4641, 5103, 8795});
    for (const auto seed : seeds) {
        Chaos chaos(seed);
        auto& sim = chaos.sim();
        INFO("seed=" << seed);
        REQUIRE(sim.run_until([&] { return chaos.all_in(); }, 60 * kPeriod));
        sim.reset_double_stats();
        chaos.run_faults(80);
        const auto double_during = sim.max_double_ms();
        chaos.end_faults();
        const auto ended = sim.now();
        // Once the faults end: a paused agent's stall (a tolerance to be seen as over), a
        // refused host's retry (a tolerance of quiet), then one convergence.
        const bool healed = sim.run_until([&] { return chaos.all_in(); }, ended + 40 * kPeriod);
        INFO(chaos.log());
        CHECK(double_during == 0);
        CHECK(sim.max_double_ms() == 0);
        REQUIRE(healed);
        // And it stays settled.
        sim.run_until(sim.now() + 10 * kPeriod);
        CHECK(chaos.all_in());
        CHECK(sim.max_double_ms() == 0);
    }
}

} // namespace test_chaos
