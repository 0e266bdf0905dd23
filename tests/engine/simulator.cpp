#include "simulator.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include "heartbeat_codec.hpp"

namespace nlb::sim {

std::vector<std::uint8_t> without_sections(const std::vector<std::uint8_t>& frame,
                                           std::initializer_list<std::uint8_t> types) {
    const std::size_t header = (std::size_t{frame[6]} << 8) | frame[7];
    std::vector<std::uint8_t> out(frame.begin(), frame.begin() + static_cast<long>(header));
    for (std::size_t pos = header; pos + 4 <= frame.size();) {
        const std::size_t len = (std::size_t{frame[pos + 2]} << 8) | frame[pos + 3];
        if (std::find(types.begin(), types.end(), frame[pos]) == types.end())
            out.insert(out.end(), frame.begin() + static_cast<long>(pos),
                       frame.begin() + static_cast<long>(pos + 4 + len));
        pos += 4 + len;
    }
    out[8] = static_cast<std::uint8_t>(out.size() >> 8);
    out[9] = static_cast<std::uint8_t>(out.size());
    return out;
}

EngineConfig default_config(std::uint8_t priority, std::size_t rules) {
    EngineConfig c;
    c.cluster.ip = 0xc0000264; // 192.0.2.100
    c.cluster.heartbeat_ms = 1000;
    c.cluster.heartbeat_tolerance = 5;
    c.cluster.cleanup_delay_s = 300;
    c.host.priority = priority;
    // The second path's address: 10.0.0.priority (the simulator routes by address).
    c.host.contact.family = 4;
    c.host.contact.address = {10, 0, 0, priority};
    c.host.contact.port = 2505;
    for (std::size_t r = 0; r < rules; ++r) {
        PortRule rule;
        rule.first_port = static_cast<std::uint16_t>(r * 100);
        rule.last_port = static_cast<std::uint16_t>(r * 100 + 99);
        c.rules.push_back(rule);
        c.host.rules.push_back({});
    }
    return c;
}

Simulator::Simulator(std::uint64_t seed, NetworkParams net)
    : rng_(seed), net_(net), owner_count_(std::size_t{NLB_RULE_SLOTS} * NLB_BUCKETS, 0) {}

std::size_t Simulator::add_host(EngineConfig config, bool start) {
    const std::size_t i = hosts_.size();
    hosts_.emplace_back();
    hosts_[i].global_anchor = hosts_[i].local_anchor = now_;
    hosts_[i].engine = std::make_unique<ConvergenceEngine>(std::move(config), rng_(), Millis{now_});
    hosts_[i].watch.restart(now_);
    if (start)
        hosts_[i].engine->on_command({CommandKind::start}, Millis{now_});
    collect(i);
    // Connection scans once a period, at a per-host phase.
    push(now_ + static_cast<std::int64_t>(rng_() % 1000), Kind::scan, i);
    return i;
}

void Simulator::kill(std::size_t i) {
    auto& h = hosts_[i];
    if (!h.alive)
        return;
    recount(i, [&] { h.alive = false; });
}

void Simulator::pause(std::size_t i) {
    auto& h = hosts_[i];
    h.paused = true;
    h.paused_at = now_; // the deadline armed after its last input stands (collect)
}

void Simulator::resume(std::size_t i) {
    auto& h = hosts_[i];
    if (!h.paused)
        return;
    h.paused = false;
    // Everything that queued up arrives at once, then the first tick.
    auto backlog = std::move(h.backlog);
    h.backlog.clear();
    for (const auto& q : backlog) {
        h.engine->on_heartbeat(*q.frame, Millis{local(i)}, q.path, Millis{q.arrived});
        collect(i);
    }
    if (link_notice && h.engine->link_up() != h.link_usable()) { // changed while paused
        tell_link(i);
        collect(i);
    }
    h.engine->on_tick(Millis{local(i)});
    collect(i);
}

void Simulator::pause_vm(std::size_t i) {
    auto& h = hosts_[i];
    recount(i, [&] { h.vm_paused = true; });
    pause(i);
}

void Simulator::resume_frozen(std::size_t i) {
    auto& h = hosts_[i];
    if (!h.paused)
        return;
    if (h.vm_paused)
        recount(i, [&] { h.vm_paused = false; });
    // The clock reads what it read at the pause, and runs on from there.
    const auto at = h.paused_at;
    const auto saved = now_;
    now_ = at;
    const auto stood = local(i);
    now_ = saved;
    h.local_anchor = stood;
    h.global_anchor = now_;
    for (auto& q : h.backlog)
        q.arrived = stood;
    // Its dataplane's deadline was armed in its own clock: it runs that much later.
    if (h.armed_until >= 0 && !h.watchdog_expired) {
        h.armed_until += now_ - at;
        push(h.armed_until, Kind::watchdog, i);
    }
    resume(i);
}

void Simulator::set_link(std::size_t i, bool up, std::int64_t notice_ms) {
    auto& h = hosts_[i];
    if (h.link_down == !up)
        return;
    recount(i, [&] { h.link_down = !up; });
    push(now_ + notice_ms, Kind::link, i);
}

void Simulator::set_receiving(std::size_t i, bool receiving, std::int64_t notice_ms) {
    auto& h = hosts_[i];
    if (h.rx_dead == !receiving)
        return;
    recount(i, [&] { h.rx_dead = !receiving; });
    push(now_ + notice_ms, Kind::link, i);
}

void Simulator::tell_link(std::size_t i) {
    auto& h = hosts_[i];
    h.engine->on_link(h.link_usable(), Millis{local(i)},
                      !h.link_down && h.rx_dead ? "nothing received" : "");
}

void Simulator::client_frame() {
    for (auto& h : hosts_)
        if (h.alive && h.link_usable())
            ++h.client_frames;
}

void Simulator::watch_receiving(std::size_t i) {
    auto& h = hosts_[i];
    if (!receive_watch)
        return;
    if (h.link_down) {
        h.watch.lost_carrier(local(i));
        return;
    }
    const std::uint64_t me = std::uint64_t{1} << (h.engine->priority() - 1);
    const bool up = h.watch.receiving(
        local(i), h.engine->config().cluster.heartbeat_ms, h.engine->counters().accepted,
        std::popcount(h.engine->view() & ~me), gateway, [&] { return h.client_frames; },
        [&] {
            if (!gateway_silent && h.link_usable()) // its answer, in before the next look
                ++h.client_frames;
        });
    if (up != h.engine->link_up())
        h.engine->on_link(up, Millis{local(i)}, up ? "" : "nothing received");
}

void Simulator::command(std::size_t i, Command c) {
    hosts_[i].engine->on_command(c, Millis{local(i)});
    collect(i);
}

void Simulator::probe_down(std::size_t i, std::uint32_t rules) {
    hosts_[i].engine->set_probe_down(rules, Millis{local(i)});
    collect(i);
}

std::string Simulator::stage(std::size_t i, EngineConfig next, std::uint64_t changed_slots) {
    auto error = hosts_[i].engine->stage(std::move(next), changed_slots, Millis{local(i)});
    collect(i);
    return error;
}

bool Simulator::set_host_rules(std::size_t i, const std::vector<HostRuleParams>& rules) {
    const bool ok = hosts_[i].engine->set_host_rules(rules, Millis{local(i)});
    collect(i);
    return ok;
}

void Simulator::inject(std::size_t i, std::vector<std::uint8_t> frame, std::int64_t delay_ms) {
    push(now_ + delay_ms, Kind::deliver, i,
         std::make_shared<const std::vector<std::uint8_t>>(std::move(frame)));
}

void Simulator::set_clock_rate(std::size_t i, double rate) {
    auto& h = hosts_[i];
    h.local_anchor = local(i);
    h.global_anchor = now_;
    h.clock_rate = rate;
}

std::int64_t Simulator::local(std::size_t i) const {
    const auto& h = hosts_[i];
    return h.local_anchor +
           static_cast<std::int64_t>(static_cast<double>(now_ - h.global_anchor) * h.clock_rate);
}

std::int64_t Simulator::global_at(std::size_t i, std::int64_t t) const {
    const auto& h = hosts_[i];
    auto reads = [&h](std::int64_t g) {
        return h.local_anchor +
               static_cast<std::int64_t>(static_cast<double>(g - h.global_anchor) * h.clock_rate);
    };
    // The first simulation millisecond at which the host's clock reads t or more (the
    // estimate is off by a rounding step at most).
    auto g = h.global_anchor + static_cast<std::int64_t>(std::ceil(
                                   static_cast<double>(t - h.local_anchor) / h.clock_rate));
    while (g > now_ && reads(g - 1) >= t)
        --g;
    while (reads(g) < t)
        ++g;
    return std::max(g, now_);
}

void Simulator::deliver(std::size_t to, std::shared_ptr<const std::vector<std::uint8_t>> frame,
                        Path path) {
    const std::int64_t lag = path == Path::contact ? net_.contact_lag_ms : 0;
    // No draw without duplicates: every seed keeps the history it had before they existed.
    if (net_.duplicate > 0 && static_cast<double>(rng_() >> 11) * 0x1.0p-53 < net_.duplicate)
        push(now_ + delay() + lag, Kind::deliver, to, frame, path);
    push(now_ + delay() + lag, Kind::deliver, to, std::move(frame), path);
}

std::int64_t Simulator::delay() {
    const auto span = static_cast<std::uint64_t>(net_.delay_max_ms - net_.delay_min_ms + 1);
    return net_.delay_min_ms + static_cast<std::int64_t>(rng_() % span);
}

void Simulator::push(std::int64_t at, Kind kind, std::size_t host,
                     std::shared_ptr<const std::vector<std::uint8_t>> frame, Path path) {
    if (kind == Kind::deliver && path == Path::segment && net_.linger_ms > 0) {
        // Read at the next turn of the host's reader: a grid of lingers, phased per host (the
        // second path's socket does not linger: the agent reads it at once).
        const std::int64_t phase = static_cast<std::int64_t>(host * 7) % net_.linger_ms;
        at = phase + (at - phase + net_.linger_ms - 1) / net_.linger_ms * net_.linger_ms;
    }
    queue_.push({at, order_++, kind, host, std::move(frame), path});
}

bool Simulator::scan(std::size_t i) {
    auto& h = hosts_[i];
    ++h.scans;
    h.last_scan = now_;
    return h.engine->on_connection_scan(h.live, h.accepted, Millis{local(i)});
}

void Simulator::collect(std::size_t i) {
    auto& h = hosts_[i];
    auto d = h.engine->take_decision();
    if (d.maps && h.installed && gives_up(*h.installed, *d.maps, h.engine->priority())) {
        // As the agent's apply does: maps that give up buckets come with a scan of their own,
        // and the frames built before it (a stale dirty list) give way to those after it.
        install(i, d.maps);
        const bool stale = scan(i);
        if (stale) {
            h.engine->frames_withheld(Millis{local(i)});
            h.frames_withheld += d.frames.size();
        }
        fold_rescan(d, h.engine->take_decision(), stale);
    }
    for (auto& e : d.events)
        h.events.push_back(std::move(e));
    if (d.maps)
        install(i, d.maps);
    for (auto& f : d.frames) {
        ++h.frames_sent;
        h.bytes_sent += f.size();
        if (is_map_chunk(f)) {
            ++h.chunk_frames_sent;
            h.chunk_bytes_sent += f.size();
        }
        auto frame = std::make_shared<const std::vector<std::uint8_t>>(std::move(f));
        if (capture)
            captured_.push_back(*frame);
        for (std::size_t j = 0; j < hosts_.size(); ++j) {
            if (j == i || !hosts_[j].alive || hosts_[j].group != h.group || h.link_down ||
                !hosts_[j].link_usable())
                continue;
            const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
            if (u < net_.loss || (drop && drop(i, j, *frame)))
                continue;
            if (rewrite)
                deliver(j, std::make_shared<const std::vector<std::uint8_t>>(rewrite(i, j, *frame)),
                        Path::segment);
            else
                deliver(j, frame, Path::segment);
        }
    }
    for (auto& c : d.contact) {
        ++h.contact_frames_sent;
        auto frame = std::make_shared<const std::vector<std::uint8_t>>(std::move(c.frame));
        for (std::size_t j = 0; j < hosts_.size(); ++j) {
            if (j == i || !hosts_[j].alive || hosts_[j].group != h.group || h.link_down ||
                !hosts_[j].link_usable() || hosts_[j].engine->config().host.contact != c.to)
                continue;
            const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
            if (u < net_.loss || (drop_contact && drop_contact(i, j, *frame)))
                continue;
            deliver(j, frame, Path::contact);
        }
    }
    arm_watchdog(i);
    const auto next = global_at(i, std::max(d.next_tick.count(), local(i)));
    if (h.tick_at < now_ || next < h.tick_at) {
        h.tick_at = next;
        push(next, Kind::tick, i);
    }
}

// As the agent does after each input: the sooner of its timeout, counted from the engine's
// last look, and the peers' confirmations; armed again (reviving an expired dataplane) only
// for a deadline still ahead and once the engine has recovered from a stall. A deadline
// already past stops the dataplane at once.
void Simulator::arm_watchdog(std::size_t i) {
    auto& h = hosts_[i];
    if (h.paused || !h.alive || h.engine->recovering())
        return;
    const auto look = h.engine->last_input().count();
    if (look < 0)
        return;
    const auto& c = h.engine->config().cluster;
    const std::int64_t timeout = look + std::int64_t{c.heartbeat_ms} * (c.heartbeat_tolerance - 1);
    const std::int64_t until =
        std::min(timeout, h.engine->confirmed_until_after(Millis(timeout)).until.count());
    if (until <= local(i)) {
        expire_watchdog(i);
        return;
    }
    const std::int64_t at = global_at(i, until);
    if (at != h.armed_until) {
        h.armed_until = at;
        push(at, Kind::watchdog, i);
    }
    if (h.watchdog_expired)
        recount(i, [&] { h.watchdog_expired = false; });
}

void Simulator::expire_watchdog(std::size_t i) {
    auto& h = hosts_[i];
    if (!h.watchdog_expired) {
        ++h.watchdog_expiries;
        recount(i, [&] { h.watchdog_expired = true; });
    }
}

void Simulator::recount(std::size_t i, const std::function<void()>& change) {
    auto& h = hosts_[i];
    const bool counted = counts(h);
    change();
    if (h.installed && counted != counts(h))
        count_owner(i, *h.installed, counted ? -1 : +1);
}

void Simulator::count_owner(std::size_t i, const SlotViews& views, int delta) {
    const auto me = hosts_[i].engine->priority();
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s)
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b) {
            if (views[s].owners[b] != me)
                continue;
            auto& c = owner_count_[s * NLB_BUCKETS + b];
            if (delta > 0) {
                if (++c == 2)
                    ++multi_;
            } else {
                if (c-- == 2)
                    --multi_;
            }
        }
}

void Simulator::install(std::size_t i, std::shared_ptr<const SlotViews> views) {
    auto& h = hosts_[i];
    if (counts(h) && h.installed)
        count_owner(i, *h.installed, -1);
    h.installed = std::move(views);
    if (counts(h))
        count_owner(i, *h.installed, +1);
}

void Simulator::step(const Item& item) {
    auto& h = hosts_[item.host];
    if (!h.alive)
        return;
    if (item.kind == Kind::watchdog) {
        if (item.at == h.armed_until && !h.vm_paused) // not armed again since
            expire_watchdog(item.host);
        return;
    }
    if (item.kind == Kind::deliver && !h.link_usable())
        return; // on the wire when the link went down
    if (h.paused) {
        if (item.kind == Kind::link)
            return; // noticed after the resume, by its first tick's look (below)
        if (item.kind == Kind::deliver)
            h.backlog.push_back({item.frame, item.path, local(item.host)});
        else if (item.kind == Kind::scan)
            push(now_ + 1000, Kind::scan, item.host);
        return; // ticks are lost; resume() ticks
    }
    switch (item.kind) {
    case Kind::deliver:
        if (!lingers(item)) {
            h.engine->on_heartbeat(*item.frame, Millis{local(item.host)}, item.path);
            break;
        }
        // One turn of the reader: every segment frame due to this host now, decided on once.
        h.engine->begin_frames();
        h.engine->on_heartbeat(*item.frame, Millis{local(item.host)}, item.path);
        while (!queue_.empty() && lingers(queue_.top()) && queue_.top().host == item.host &&
               queue_.top().at == item.at) {
            const Item next = queue_.top();
            queue_.pop();
            h.engine->on_heartbeat(*next.frame, Millis{local(item.host)}, next.path);
        }
        h.engine->end_frames(Millis{local(item.host)});
        break;
    case Kind::tick:
        if (item.at != h.tick_at)
            return; // superseded
        h.tick_at = -1;
        watch_receiving(item.host);
        h.engine->on_tick(Millis{local(item.host)});
        break;
    case Kind::scan: {
        std::uint64_t mine = 0;
        if (h.installed)
            for (auto o : (*h.installed)[0].owners)
                mine += o == h.engine->priority();
        if (!h.rx_dead) // no client's packet reaches it
            h.accepted += mine * h.accept_rate;
        // As the agent's periodic duty does: the tables while the engine needs them or once
        // a quiet interval, the accepted count alone otherwise.
        if (h.engine->needs_scans() || h.last_scan < 0 || now_ - h.last_scan >= quiet_scan_ms)
            scan(item.host);
        else
            h.engine->on_accepted_total(h.accepted);
        push(now_ + 1000, Kind::scan, item.host);
        break;
    }
    case Kind::watchdog:
        break;
    case Kind::link:
        if (link_notice)
            tell_link(item.host);
        break;
    }
    collect(item.host);
}

void Simulator::run_until(std::int64_t t) {
    run_until([] { return false; }, t);
}

bool Simulator::run_until(const std::function<bool()>& pred, std::int64_t deadline) {
    while (!queue_.empty() && queue_.top().at <= deadline) {
        const Item item = queue_.top();
        queue_.pop();
        now_ = item.at;
        step(item);
        // Double-ownership bookkeeping at every instant the maps can change.
        if (multi_ > 0 && double_since_ < 0)
            double_since_ = now_;
        if (multi_ == 0 && double_since_ >= 0) {
            max_double_ms_ = std::max(max_double_ms_, now_ - double_since_);
            double_since_ = -1;
        }
        if (pred())
            return true;
    }
    now_ = std::max(now_, deadline);
    return pred();
}

std::int64_t Simulator::max_double_ms() const {
    return double_since_ >= 0 ? std::max(max_double_ms_, now_ - double_since_) : max_double_ms_;
}

int Simulator::owners(std::size_t slot, std::uint32_t bucket) const {
    return owner_count_[slot * NLB_BUCKETS + bucket];
}

bool Simulator::all_owned_once(std::size_t slot) const {
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        if (owners(slot, b) != 1)
            return false;
    return true;
}

std::size_t Simulator::unowned(std::size_t slot) const {
    std::size_t n = 0;
    for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b)
        n += owner_count_[slot * NLB_BUCKETS + b] == 0;
    return n;
}

bool Simulator::settled() const {
    const SimHost* first = nullptr;
    for (const auto& h : hosts_) {
        if (!h.alive)
            continue;
        const auto s = h.engine->state();
        if (s == HostState::stopped || s == HostState::suspended || s == HostState::refused)
            continue;
        if (s != HostState::converged || !h.installed)
            return false;
        if (!first) {
            first = &h;
        } else {
            if (h.engine->epoch() != first->engine->epoch() ||
                h.engine->map_digest() != first->engine->map_digest())
                return false;
            for (std::size_t s2 = 0; s2 < NLB_RULE_SLOTS; ++s2)
                if ((*h.installed)[s2].owners != (*first->installed)[s2].owners)
                    return false;
        }
    }
    if (!first)
        return false;
    // Every bucket of a configured slot owned exactly once, by the named owner.
    const auto rules = first->engine->config().rules.size();
    for (std::size_t s = 0; s < NLB_RULE_SLOTS; ++s) {
        if (s >= rules && s != NLB_RULE_DEFAULT)
            continue;
        if (s < rules && first->engine->config().rules[s].mode == RuleMode::disabled)
            continue;
        for (std::uint32_t b = 0; b < NLB_BUCKETS; ++b) {
            const auto named = (*first->installed)[s].owners[b];
            if (named == 0)
                continue; // e.g. every weight 0
            if (owner_count_[s * NLB_BUCKETS + b] != 1)
                return false;
        }
    }
    return true;
}

bool has_event(const SimHost& h, EventKind kind, std::uint8_t host) {
    return std::any_of(h.events.begin(), h.events.end(), [&](const Event& e) {
        return e.kind == kind && (host == 0 || e.host == host);
    });
}

bool has_event_with(const SimHost& h, EventKind kind, const std::string& text) {
    return std::any_of(h.events.begin(), h.events.end(), [&](const Event& e) {
        return e.kind == kind && e.text.find(text) != std::string::npos;
    });
}

std::size_t count_events(const SimHost& h, EventKind kind) {
    return static_cast<std::size_t>(std::count_if(h.events.begin(), h.events.end(),
                                                  [&](const Event& e) { return e.kind == kind; }));
}

std::string refusals(const SimHost& h) {
    std::string all;
    for (const auto& e : h.events)
        if (e.kind == EventKind::host_refused)
            all += e.text + "\n";
    return all;
}

} // namespace nlb::sim
