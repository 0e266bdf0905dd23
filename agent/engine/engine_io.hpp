// What goes into the convergence engine and what comes out of it (convergence_engine.hpp):
// operators' commands, the events it logs, the slot views the dataplane installs, its
// counters, the Decision the agent takes out after each input, and the bounds it asks for.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlb/limits.h>

#include "allocation.hpp"
#include "heartbeat.hpp"
#include "heartbeat_codec.hpp"
#include "rules.hpp"

namespace nlb {

using Millis = std::chrono::milliseconds;

enum class CommandKind {
    start,
    stop,
    drainstop,
    suspend,
    resume,
    rule_enable,  // per rule (Command::rule, or all)
    rule_disable, // stop at once: connections in it are dropped
    rule_drain,   // stop new connections, finish existing ones
};

struct Command {
    CommandKind kind = CommandKind::start;
    int rule = -1; // port rule index for rule_*; -1 = every rule
};

enum class EventKind {
    state_changed,
    host_joined,
    host_left,
    host_changed,
    convergence_started,
    converged,
    host_refused,       // another host refused by this one (rules differ, priority taken)
    refused,            // this host refused
    partition_detected, // a converged group with another epoch met this one's
    partition_yield,    // this host's group had fewer connections: it let go of its buckets
    unauthenticated,    // no cluster key: heartbeats are not authenticated (once)
    duplicate_priority,
    drain_complete,
    command_rejected,
    map_received, // this host got the cluster's base map by transfer
    map_fallback, // it gave up waiting for it: the cluster falls back to allocate()
    stalled,      // this host's inputs stopped for longer than the watchdog allows
    unreadable,   // frames of this cluster it cannot authenticate or read (once per episode)

    // Health probes (docs/health.md): an installed epoch serves a rule as if every member were
    // healthy (panic mode), and the next one no longer does.
    panic_started,
    panic_ended,
    // This host, whose seed comes from its key, joined a cluster hashing with the fixed seed
    // (a release before per-cluster seeds, or one upgraded in place) before it ever served,
    // and hashes with the fixed seed too for the rest of its run (docs/dataplane.md).
    seed_inherited,
    // Staged configuration (docs/staged-config.md): the staged set became the running one.
    config_switched,
    // The agent saw this host's link go down or come back (ConvergenceEngine::on_link).
    link_down,
    link_up,
    // Heartbeats are sized to another budget: this host's MTU or a peer's changed (host: whose
    // MTU sets it), and a heartbeat longer than the budget (docs/convergence.md, "Frame size").
    frame_budget,
    frame_oversized,
};

// How a frame reached this host: the segment (0x886F to the cluster MAC) or the agents'
// second path (unicast UDP between dedicated IPs, docs/convergence.md "Contact").
enum class Path : std::uint8_t { segment = 0, contact = 1 };

const char* to_string(EventKind kind);

struct Event {
    Millis at{0};
    EventKind kind = EventKind::state_changed;
    std::uint8_t host = 0; // the host it concerns (this one or a peer)
    std::string text;
};

// One rule slot as this host must install it: owners give the NLB_BKT_OWNER byte and
// (== this host's priority) NLB_BKT_MINE; the sets give the other NLB_BKT_* flags.
struct SlotView {
    OwnerMap owners{};
    BucketBits dirty_elsewhere; // owned here; another host still serves connections in it
    BucketBits tracked_here;    // not owned here; this host still serves connections in it
    BucketBits adopt;           // owned here, taken recently: record mid-stream connections
    bool operator==(const SlotView&) const = default;
};
using SlotViews = std::array<SlotView, NLB_RULE_SLOTS>;

// (rule slot, bucket) pairs where this host's connection table holds live connections.
struct LiveBuckets {
    std::array<BucketBits, NLB_RULE_SLOTS> slots{};
};

struct EngineCounters {
    std::uint64_t received = 0;
    std::uint64_t accepted = 0;
    std::uint64_t malformed = 0;
    std::uint64_t bad_version = 0;
    std::uint64_t other_cluster = 0;
    std::uint64_t unauthenticated = 0; // no HMAC while this host has a key
    std::uint64_t bad_mac = 0;
    std::uint64_t replayed = 0;
    // Authentic, but a later frame of its stream came first by the other path: only when its
    // path was heard is kept (on_heartbeat).
    std::uint64_t superseded = 0;
    // Read more than a tolerance after it came (queued up while this host stalled): it tells
    // of a past in which its sender may have died since, so it is not taken in.
    std::uint64_t late = 0;
    std::uint64_t duplicate_priority = 0;
    std::uint64_t own = 0; // this host's own frames looped back
    std::uint64_t sent = 0;
    // Sent longer than the frame budget (an MTU of this host or a peer below what this
    // configuration's frames need): they may not arrive.
    std::uint64_t oversized = 0;
    // Map transfer (frames counted in `received` and the rejection reasons above too).
    std::uint64_t map_chunks_sent = 0;
    std::uint64_t map_chunks_received = 0; // authenticated, fresh, from a live member
    std::uint64_t map_chunks_ignored = 0;  // not the map this host waits for
    std::uint64_t map_rejected = 0;        // inconsistent chunk or a map whose digest fails
    std::uint64_t map_transfers = 0;       // maps received whole and verified
    std::uint64_t map_fallbacks = 0;       // gave up waiting (stateless allocation)
    // Contact (1.2).
    std::uint64_t contact_received = 0; // frames that came by the second path
    std::uint64_t contact_sent = 0;
    std::uint64_t unverified = 0; // authentic but not (yet) echoing this boot: not used
    std::uint64_t stalls = 0;
    std::uint64_t evaluations = 0; // decisions on frames (once per batch: begin_frames)
};

// One heartbeat to send by the second path.
struct ContactFrame {
    std::uint8_t priority = 0; // the peer it goes to
    ContactAddress to;
    std::vector<std::uint8_t> frame;
};

struct Decision {
    std::vector<std::vector<std::uint8_t>> frames; // Ethernet payloads, EtherType 0x886F
    std::vector<ContactFrame> contact;             // UDP payloads, to NLB_CONTACT_PORT
    std::vector<Event> events;
    std::shared_ptr<const SlotViews> maps;  // null: unchanged since the last decision
    std::optional<std::uint32_t> flow_seed; // the dataplane's hash seed changes to this
    // The staged configuration became the running one (config()): the agent rewrites the
    // dataplane's rule tables. The maps in this decision already hold none of the changed
    // slots' buckets, so the tables change under no owner of them here.
    bool switched = false;
    HostState state = HostState::stopped;
    Millis next_tick{0};
};

// The agent's two questions between decisions. ConvergenceEngine::frame_budget: the most
// bytes a heartbeat of this host takes now, and the host whose MTU sets it.
struct FrameBudget {
    std::size_t bytes = kHeartbeatMaxSize;
    std::uint8_t by = 0;
    std::size_t mtu = kHeartbeatMaxSize; // that host's MTU
};
// ConvergenceEngine::confirmed_until, the watchdog's other bound: the soonest instant a peer
// may take this host's buckets, and that peer.
struct ConfirmedBound {
    Millis until;
    std::uint8_t by = 0;
};

// Whether `next` takes from host `me` a bucket it owns in `installed`: the agent then scans
// its connection tables before the maps go in (docs/agent.md).
bool gives_up(const SlotViews& installed, const SlotViews& next, std::uint8_t me);

// The decision taken after that scan, folded into the one that gave the buckets up: what
// `again` brings follows what `first` had; the frames of `first` go only if the scan left
// the dirty list they carry as it was (`stale` false: on_connection_scan's answer).
void fold_rescan(Decision& first, Decision again, bool stale);

} // namespace nlb
