// Random schedules of the faults test_chaos.cpp leaves aside or draws rarely, on small
// clusters (2 hosts, whose ties decide everything, up to 8): weight changes with a loss burst
// right at the hand-over they start, restarts whose earlier boot's frames are still on their
// way, pauses of up to 20 periods, a host restarted with other rules (a misconfigured host)
// beside a majority or a minority, a misconfigured stranger joining, and VMs stopped by their
// hypervisor with their clock (which sees no gap on resume). Same properties as the chaos
// test: no bucket ever has two serving owners, and once the faults end every host is back and
// the cluster settled within a bound; but a schedule with a VM stopped with its clock may
// have two owners for up to a period, a delay and a linger, as a partition heal (its epoch may
// hold none of the hosts it meets, or only a restarted peer paused meanwhile, whose frames
// cannot prove anything to it). Of seeds 0-3999, four exceed that, each a VM woken with its
// clock where it stood: 285 (1.8 s), a VM that wakes deaf, then mute, the winner of a
// partition heal its peer's new boot cannot hear; 1068 (2.7 s), a VM that wakes beside its
// peer's new boot, which never heard it and is paused: nothing of that boot is proven fresh
// until it speaks again; 2869 (1.5 s, after the faults end: the VM holds its peer's new boot
// as a rival, and meets its group only once it takes it in) and 3024 (4.3 s, a VM woken deaf
// among 8 hosts); of seeds 4000-6999, six, all VM wakes too (docs/convergence.md, "A stall
// the host's own clock cannot see").
// NLB_CHAOS_OPS_SEEDS=N runs N schedules (default 12), from NLB_CHAOS_OPS_FIRST_SEED;
// NLB_CHAOS_OPS_LOG=1 prints a failed schedule.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "chaos_schedule.hpp"
#include "simulator.hpp"

using namespace nlb;
using namespace nlb::sim;

namespace test_chaos_ops {

namespace {

constexpr std::int64_t kPeriod = 1000;
const std::vector<std::uint8_t> kKey(32, 0x3c);

EngineConfig config_for(std::uint8_t priority, std::size_t hosts, bool misconfigured = false) {
    auto c = default_config(priority);
    c.cluster.key = kKey;
    for (std::size_t p = 1; p <= hosts + 1; ++p)
        c.host.peers.push_back(default_config(static_cast<std::uint8_t>(p)).host.contact);
    if (misconfigured)
        c.rules[0].last_port = 98;
    return c;
}

using chaos::Spell;

class Ops {
  public:
    explicit Ops(std::uint64_t seed) : rng_(seed * 104729 + 7) {
        const std::size_t sizes[] = {2, 2, 2, 3, 3, 4, 5, 8};
        n_ = sizes[pick(8)];
        net_.loss = pick(3) * 0.02;
        net_.delay_min_ms = 1;
        net_.delay_max_ms = 2 + static_cast<std::int64_t>(pick(40));
        net_.linger_ms = pick(2) ? static_cast<std::int64_t>(pick(60)) : 0;
        sim_.emplace(seed, net_);
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
    bool froze() const { return froze_; }
    std::int64_t linger_ms() const { return net_.linger_ms; }
    std::int64_t delay_max_ms() const { return net_.delay_max_ms; }
    std::string log() const { return log_.str(); }

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
                restart(priority, false);
            else if (p.misconfigured)
                sim_->resume_frozen(index_[priority]);
            else
                sim_->resume(index_[priority]);
        }
        for (auto& [priority, mis] : misconfigured_)
            if (mis) {
                sim_->kill(index_[priority]);
                restart(priority, false);
            }
        if (stranger_) {
            sim_->kill(*stranger_);
            stranger_.reset();
        }
        for (auto& [priority, i] : index_) {
            // Weight 0 everywhere would leave the rule to nobody, by design.
            sim_->set_host_rules(i, std::vector<HostRuleParams>(1));
            if (drained_.started_at_end(priority, sim_->host(i).engine->state()))
                sim_->command(i, {CommandKind::start});
        }
        note() << "faults end";
    }

    bool all_in() { return chaos::all_converged(*sim_, index_); }

  private:
    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
    std::ostream& note() { return log_ << "\nt=" << sim_->now() << " "; }

    std::uint8_t priority_of(std::size_t boot) const { return chaos::priority_of(index_, boot); }

    bool dropped(std::size_t from, std::size_t to, bool contact) {
        return chaos::spell_drops(spells_, priority_of(from), priority_of(to), contact, sim_->now(),
                                  rng_);
    }

    void advance(std::int64_t t) {
        while (true) {
            std::optional<std::int64_t> due;
            for (const auto& [priority, p] : pending_)
                if (!due || p.at < *due)
                    due = p.at;
            if (!due || *due > t)
                break;
            run_to(*due);
            for (auto it = pending_.begin(); it != pending_.end();) {
                const auto [priority, p] = *it;
                if (p.at > sim_->now()) {
                    ++it;
                    continue;
                }
                it = pending_.erase(it);
                if (p.what == Pending::restart) {
                    restart(priority, p.misconfigured);
                } else if (p.misconfigured) {
                    note() << "VM of " << int(priority) << " resumed, its clock where it stood";
                    sim_->resume_frozen(index_[priority]);
                } else {
                    note() << "resume " << int(priority);
                    sim_->resume(index_[priority]);
                }
            }
        }
        run_to(t);
    }

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

    void restart(std::uint8_t priority, bool misconfigured) {
        note() << "restart " << int(priority) << (misconfigured ? " misconfigured" : "");
        misconfigured_[priority] = misconfigured;
        drained_.restarted(priority);
        index_[priority] = sim_->add_host(config_for(priority, n_, misconfigured));
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
        switch (pick(13)) {
        case 0:
        case 1: {
            if (busy(priority))
                break;
            std::vector<HostRuleParams> params(1);
            params[0].load_weight =
                pick(4) == 0 ? HostRuleParams{}.load_weight : static_cast<std::uint8_t>(pick(101));
            note() << "weight " << int(params[0].load_weight) << " on " << int(priority);
            sim_->set_host_rules(i, params);
            if (pick(2)) {
                // A loss burst right at the hand-over the change starts, on the segment.
                const auto victim = static_cast<std::uint8_t>(1 + pick(n_));
                const auto kind = pick(2) ? Spell::lossy_out : Spell::lossy_in;
                const auto to = now + len(kPeriod / 4, 2 * kPeriod);
                spells_.push_back({kind, victim, 1.0, now, to});
                note() << "burst " << (kind == Spell::lossy_out ? "out of " : "into ")
                       << int(victim) << " until " << to;
            }
            break;
        }
        case 2:
        case 3:
            if (busy(priority))
                break;
            pending_[priority] = {now +
                                      (pick(2) ? len(50, 2 * kPeriod) : len(kPeriod, 20 * kPeriod)),
                                  Pending::resume, false};
            note() << "pause " << int(priority) << " until " << pending_[priority].at;
            sim_->pause(i);
            break;
        case 4: {
            if (busy(priority))
                break;
            // Restarted at once (its earlier boot's frames still on their way), or later;
            // sometimes with other rules.
            const bool mis = pick(4) == 0;
            pending_[priority] = {now + (pick(2) ? len(0, 60) : len(kPeriod, 12 * kPeriod)),
                                  Pending::restart, mis};
            note() << "crash " << int(priority) << ", restart at " << pending_[priority].at;
            sim_->kill(i);
            break;
        }
        case 5:
        case 6: {
            chaos::draw_spell(spells_, priority, now, kPeriod, draw, len, say);
            break;
        }
        case 7:
            if (busy(priority))
                break;
            chaos::draw_clock(*sim_, i, priority, draw, say);
            break;
        case 8:
        case 9: {
            if (busy(priority))
                break;
            chaos::draw_command(*sim_, i, priority, draw, say, drained_);
            break;
        }
        case 10:
            // A misconfigured stranger joins, or leaves.
            if (stranger_) {
                note() << "stranger leaves";
                sim_->kill(*stranger_);
                stranger_.reset();
            } else {
                note() << "misconfigured stranger " << n_ + 1 << " joins";
                stranger_ =
                    sim_->add_host(config_for(static_cast<std::uint8_t>(n_ + 1), n_, pick(2) != 0));
            }
            break;
        case 11:
            if (busy(priority))
                break;
            // A VM stopped by its hypervisor, whose clock stands still meanwhile: its engine
            // sees no gap, its dataplane's deadline none either.
            pending_[priority] = {now + len(50, 20 * kPeriod), Pending::resume, true};
            note() << "VM of " << int(priority) << " stopped until " << pending_[priority].at;
            froze_ = true;
            sim_->pause_vm(i);
            break;
        default:
            break;
        }
    }

    std::mt19937_64 rng_;
    std::size_t n_ = 0;
    NetworkParams net_;
    std::optional<Simulator> sim_;
    std::map<std::uint8_t, std::size_t> index_;
    chaos::DrainStops drained_;
    std::map<std::uint8_t, bool> misconfigured_;
    std::optional<std::size_t> stranger_;
    struct Pending {
        std::int64_t at;
        enum What { resume, restart } what;
        bool misconfigured; // restart: with other rules; resume: a VM's, its clock stood
    };
    std::map<std::uint8_t, Pending> pending_;
    std::vector<Spell> spells_;
    bool doubled_ = false;
    bool froze_ = false;
    std::ostringstream log_;
};

// One schedule: whether it kept its properties (a failure is printed).
bool schedule_holds(std::uint64_t seed) {
    Ops ops(seed);
    auto& sim = ops.sim();
    INFO("seed=" << seed);
    REQUIRE(sim.run_until([&] { return ops.all_in(); }, 60 * kPeriod));
    sim.reset_double_stats();
    ops.run_faults(80);
    const auto double_during = sim.max_double_ms();
    ops.end_faults();
    const auto ended = sim.now();
    const bool healed = sim.run_until([&] { return ops.all_in(); }, ended + 40 * kPeriod);
    sim.run_until(sim.now() + 5 * kPeriod);
    // A VM stopped with its clock is, when it wakes, a group that may have served apart
    // from the rest (alone in its epoch, or with peers that left it out since): the two
    // meet as after a partition, which a heartbeat period of two owners may take, counted
    // from when the other group's first frame is read: up to the network's delay and a
    // linger after the wake (docs/convergence.md, section 1).
    const std::int64_t allowed = ops.froze() ? kPeriod + ops.delay_max_ms() + ops.linger_ms() : 0;
    const bool ok =
        double_during <= allowed && sim.max_double_ms() <= allowed && healed && ops.all_in();
    if (!ok) {
        std::printf("FAIL seed %lu double %ld/%ld healed %d\n", (unsigned long)seed,
                    (long)double_during, (long)sim.max_double_ms(), healed ? 1 : 0);
        if (std::getenv("NLB_CHAOS_OPS_LOG"))
            std::printf("%s\n", ops.log().c_str());
    }
    return ok;
}

} // namespace

TEST_CASE("chaos of operations: weights, restarts, misconfigured hosts, 2-host ties") {
    CHECK(chaos::failed_schedules("NLB_CHAOS_OPS_FIRST_SEED", "NLB_CHAOS_OPS_SEEDS", 12,
                                  schedule_holds) == 0);
}

// Schedules beyond the default range that found a defect, each 1.0-5.5 s of two owners
// before its fix (docs/convergence.md, "A stall the host's own clock cannot see"): a VM
// stopped with its clock whose epoch's member restarted meanwhile and is paused, its new
// group's frames read first from a host outside the VM's epoch (125, 508); a VM that meets a
// group whose leader is paused, and waited for its score (696, 700); 932 alike.
TEST_CASE("chaos of operations: the schedules that found VM-stop defects") {
    // 1207: a VM stopped while draining (its peers counted it dead and stopped naming it).
    // 779, 965, 1358, 1669, 1963: a VM woken past the tolerance, echoed at once by its peers
    // (engine_frames.cpp: the echo soon of a host heard again is for shorter gaps only).
    // 2100, 2465, 3210: a VM woken beside a group whose own leader was silent (2100: it had
    // just crashed), so its members waited for that leader's score; 2827, 3723: members of
    // the losing group that yielded did not take the others along (2827: one that could not
    // take the VM's frames in served on). Fixed by the two rules of test_partition_heal.cpp.
    // 2869, 285, 4877, 6143, 6944: a VM woken beside its peer's new boot, held as a rival of
    // the boot it heard just before its stop (by its clock), met that boot's group only once
    // it was taken in, 1.5 periods on (test_partition_heal.cpp, the third case).
    for (std::uint64_t seed : {125,  508,  696,  700,  932,  1207, 779, 965,  1358, 1669, 1963,
                               2100, 2465, 3210, 2827, 3723, 2869, 285, 4877, 6143, 6944})
        CHECK(schedule_holds(seed));
}

} // namespace test_chaos_ops
