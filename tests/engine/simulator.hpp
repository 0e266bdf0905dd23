// A deterministic discrete-event simulator of N hosts running the convergence engine on a
// lossy, delaying, partitionable broadcast network (seeded: one seed, one history). It
// installs each host's maps the instant the engine decides them and measures, across the
// live hosts, how long any bucket had two owners.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "convergence_engine.hpp"
#include "receive_watch.hpp"

namespace nlb::sim {

struct NetworkParams {
    double loss = 0.0; // probability that one receiver misses one frame
    std::int64_t delay_min_ms = 1;
    std::int64_t delay_max_ms = 5;
    double duplicate = 0.0; // probability that a receiver gets a frame twice (own delays)
    // The agent's linger (BatchReader): > 0 makes each host read its segment frames in
    // batches, every linger_ms (its own phase), and decide on each batch once (begin_frames /
    // end_frames); the second path's frames are read as they come, as the agent does.
    std::int64_t linger_ms = 0;
    // Added to every second-path delivery: a receiver whose reader comes late to one socket.
    std::int64_t contact_lag_ms = 0;
};

struct SimHost {
    std::unique_ptr<ConvergenceEngine> engine;
    bool alive = true;
    int group = 0; // partition: frames reach only hosts of the same group
    std::shared_ptr<const SlotViews> installed;
    std::int64_t tick_at = -1;
    LiveBuckets live;              // connections the test says this host still serves
    std::uint64_t accepted = 0;    // connections accepted (grows with the buckets owned)
    std::uint64_t accept_rate = 1; // connections per owned bucket (slot 0) per period
    // Connection scans the engine was given (on_connection_scan), and when the last one was.
    std::uint64_t scans = 0;
    std::int64_t last_scan = -1;
    // Frames not sent because the scan at a release made their dirty list stale.
    std::uint64_t frames_withheld = 0;
    std::vector<Event> events;
    std::uint64_t frames_sent = 0, bytes_sent = 0;
    std::uint64_t chunk_frames_sent = 0, chunk_bytes_sent = 0; // map transfer (included above)
    std::uint64_t contact_frames_sent = 0;
    // Paused (SIGSTOP, a VM pause): inputs wait in `backlog` until resume. Its dataplane's
    // watchdog is armed as the agent arms it after every input (Simulator::arm_watchdog): it
    // expires (tolerance − 1) periods after the engine's last look, or sooner at the bound the
    // peers' confirmations set (confirmed_until), paused or not.
    bool paused = false;
    bool vm_paused = false; // pause_vm: answers nothing, its clock stands still
    std::int64_t paused_at = 0;
    bool watchdog_expired = false;
    std::uint64_t watchdog_expiries = 0;
    // set_link: its link is down: no frame goes out or comes in, no client's packet reaches
    // its dataplane; its engine is told after the agent's delay in noticing.
    bool link_down = false;
    // set_receiving: nothing reaches it, neither frames nor clients' packets, while its own
    // frames still leave (a switch port, a NIC's receive path or a fibre failed one way); its
    // engine is told as for a link down, with the agent's why.
    bool rx_dead = false;
    bool link_usable() const { return !link_down && !rx_dead; }
    // receive_watch: the agent's rule for a link that fails one way, run at every tick on the
    // engine's accepted count and `client_frames` (frames of clients that reached its dataplane).
    ReceiveWatch watch;
    std::uint64_t client_frames = 0;
    std::int64_t armed_until = -1; // the deadline armed last (simulation time)
    struct Queued {
        std::shared_ptr<const std::vector<std::uint8_t>> frame;
        Path path;
        std::int64_t arrived; // the host's clock when the frame came (the kernel's timestamp)
    };
    std::vector<Queued> backlog;
    // The host's own clock (what its engine is told): local = local_anchor + (now −
    // global_anchor) × clock_rate. 1.05 runs 5 % fast.
    double clock_rate = 1.0;
    std::int64_t local_anchor = 0, global_anchor = 0;
};

// Default cluster config for host `priority` (one all-ports rule, equal weights).
EngineConfig default_config(std::uint8_t priority, std::size_t rules = 1);

// What host h's engine reported: whether it reported an event of `kind` (about `host`, when
// not 0; whose text contains `text`), how many, and the text of each refusal (host_refused), a
// line each.
bool has_event(const SimHost& h, EventKind kind, std::uint8_t host = 0);
bool has_event_with(const SimHost& h, EventKind kind, const std::string& text);
std::size_t count_events(const SimHost& h, EventKind kind);
std::string refusals(const SimHost& h);

// An unauthenticated heartbeat frame without its sections of the given types, its total
// length patched (what an older version would have sent; no HMAC to redo).
std::vector<std::uint8_t> without_sections(const std::vector<std::uint8_t>& frame,
                                           std::initializer_list<std::uint8_t> types);

class Simulator {
  public:
    Simulator(std::uint64_t seed, NetworkParams net);

    std::int64_t now() const { return now_; }
    // What host i's clock reads now (its engine's time).
    std::int64_t clock_of(std::size_t i) const { return local(i); }
    std::size_t add_host(EngineConfig config, bool start = true);
    SimHost& host(std::size_t i) { return hosts_[i]; }
    std::size_t size() const { return hosts_.size(); }
    void kill(std::size_t i);
    void command(std::size_t i, Command c);
    // Host i's health probes now hold down these port rules (ConvergenceEngine::set_probe_down).
    void probe_down(std::size_t i, std::uint32_t rules);
    // Host i stages `next` (ConvergenceEngine::stage); what it returned.
    std::string stage(std::size_t i, EngineConfig next, std::uint64_t changed_slots);
    void set_group(std::size_t i, int group) { hosts_[i].group = group; }
    // Host i's per-rule weights and handling priorities change (a reload); what it returned.
    bool set_host_rules(std::size_t i, const std::vector<HostRuleParams>& rules);
    // From now on host i's clock runs at `rate` times the simulation's (1.05: 5 % fast).
    void set_clock_rate(std::size_t i, double rate);
    void pause(std::size_t i);
    void resume(std::size_t i);
    // Resumes host i whose clock stood still while it was paused (a VM stopped by its
    // hypervisor, whose guest clock is restored to where it stood): its engine sees no gap, and
    // what queued up meanwhile reaches it stamped with that time.
    void resume_frozen(std::size_t i);
    // Stops host i as a hypervisor stops a VM: its dataplane answers nothing meanwhile, and
    // its clock stands still until resume_frozen.
    void pause_vm(std::size_t i);
    // Host i's link goes down (up: comes back) now; its agent notices `notice_ms` later and
    // tells its engine (ConvergenceEngine::on_link).
    void set_link(std::size_t i, bool up, std::int64_t notice_ms = 0);
    // Host i stops receiving anything (receiving false) or receives again, now; its agent
    // notices `notice_ms` later (the receive counter standing still) and tells its engine.
    void set_receiving(std::size_t i, bool receiving, std::int64_t notice_ms = 0);
    // False: set_link cuts the host off but its engine is never told (on_link), as with the
    // build before the link-down change: for comparing a schedule with and without it.
    bool link_notice = true;
    // True: every host's agent runs its watch for a link that fails one way (ReceiveWatch) at
    // every tick and tells its engine what it finds, as Agent::watch_link does.
    bool receive_watch = false;
    // True: a gateway on the segment, which the watch asks (ReceiveProbe) and which answers
    // every host whose link delivers, unless gateway_silent (down, or it ignores ARP).
    bool gateway = false;
    bool gateway_silent = false;
    // A client's frame to the cluster MAC: every host whose link delivers counts it.
    void client_frame();
    // Delivers raw bytes to host i (an attacker on the segment) after `delay_ms`.
    void inject(std::size_t i, std::vector<std::uint8_t> frame, std::int64_t delay_ms = 1);

    void run_until(std::int64_t t);
    // Runs until pred() holds (checked after every event) or `deadline`; true if it held.
    bool run_until(const std::function<bool()>& pred, std::int64_t deadline);

    // Every live, started host converged, on one epoch, every bucket of every slot owned by
    // exactly the owner that epoch's map names, and these maps identical on every host.
    bool settled() const;
    // Live hosts that believe they own (slot, bucket).
    int owners(std::size_t slot, std::uint32_t bucket) const;
    // Every bucket of `slot` owned by exactly one of the hosts that count (live, watchdog
    // not expired).
    bool all_owned_once(std::size_t slot = 0) const;
    // Buckets of `slot` no live host owns.
    std::size_t unowned(std::size_t slot) const;

    // Double ownership: the longest stretch (ms) during which some bucket had two or more
    // owners among live hosts, and the current one (-1 if none now).
    std::int64_t max_double_ms() const;
    std::int64_t double_since() const { return double_since_; }
    void reset_double_stats() { max_double_ms_ = 0; }

    // The agent's spacing of the scans the engine does not need (quiet_scan_interval: 2 s to
    // 60 s by their cost); the longest by default, so that no test leans on a quiet scan.
    std::int64_t quiet_scan_ms = 60000;

    std::vector<std::vector<std::uint8_t>>& captured() { return captured_; }
    bool capture = false;
    // When set and true for (sender, receiver, frame), that receiver misses that frame: `drop`
    // on the segment, `drop_contact` on the second path (unicast UDP between hosts).
    std::function<bool(std::size_t, std::size_t, const std::vector<std::uint8_t>&)> drop;
    std::function<bool(std::size_t, std::size_t, const std::vector<std::uint8_t>&)> drop_contact;
    // When set, (sender, receiver, frame) -> the bytes that receiver gets instead.
    std::function<std::vector<std::uint8_t>(std::size_t, std::size_t,
                                            const std::vector<std::uint8_t>&)>
        rewrite;

  private:
    enum class Kind { deliver, tick, scan, watchdog, link };
    struct Item {
        std::int64_t at;
        std::uint64_t order;
        Kind kind;
        std::size_t host;
        std::shared_ptr<const std::vector<std::uint8_t>> frame;
        Path path = Path::segment;
        bool operator>(const Item& o) const { return at != o.at ? at > o.at : order > o.order; }
    };

    void push(std::int64_t at, Kind kind, std::size_t host,
              std::shared_ptr<const std::vector<std::uint8_t>> frame = {},
              Path path = Path::segment);
    bool counts(const SimHost& h) const {
        return h.alive && !h.watchdog_expired && !h.vm_paused && h.link_usable();
    }
    bool lingers(const Item& item) const {
        return item.kind == Kind::deliver && item.path == Path::segment && net_.linger_ms > 0;
    }
    void step(const Item& item);
    void collect(std::size_t i);
    bool scan(std::size_t i);
    void install(std::size_t i, std::shared_ptr<const SlotViews> views);
    void count_owner(std::size_t i, const SlotViews& views, int delta);
    void arm_watchdog(std::size_t i);
    void expire_watchdog(std::size_t i);
    // Runs `change` on host i's flags and keeps the owner counts right if it changed whether
    // the host counts.
    void recount(std::size_t i, const std::function<void()>& change);
    std::int64_t delay();
    // Host i's clock now, and the simulation time at which it reads `local`.
    std::int64_t local(std::size_t i) const;
    std::int64_t global_at(std::size_t i, std::int64_t local) const;
    void deliver(std::size_t to, std::shared_ptr<const std::vector<std::uint8_t>> frame, Path path);
    void tell_link(std::size_t i); // its engine: on_link as its agent sees the link now
    void watch_receiving(std::size_t i);

    std::mt19937_64 rng_;
    NetworkParams net_;
    std::int64_t now_ = 0;
    std::uint64_t order_ = 0;
    std::priority_queue<Item, std::vector<Item>, std::greater<>> queue_;
    std::vector<SimHost> hosts_;
    std::vector<std::uint8_t> owner_count_; // [slot * NLB_BUCKETS + bucket]
    std::size_t multi_ = 0;                 // entries of owner_count_ >= 2
    std::int64_t double_since_ = -1;
    std::int64_t max_double_ms_ = 0;
    std::vector<std::vector<std::uint8_t>> captured_;
};

} // namespace nlb::sim
