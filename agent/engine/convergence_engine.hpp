// The convergence engine: heartbeats, membership, agreement and bucket hand-over as a pure
// state machine (etcd raft's shape). No sockets, no clock, no threads: the agent feeds it
// events with the time they happened and acts on the Decision it takes out.
//
//   on_heartbeat(frame, now)    a received 0x886F payload
//   on_tick(now)                at or after Decision::next_tick (earlier is harmless)
//   on_link(up, now)            the host's own link went down or came back
//   on_command(cmd, now)        nlbadm start / stop / drainstop / suspend / resume / per rule
//   on_connection_scan(...)     (rule slot, bucket) pairs with live connections and the
//                               running count of connections accepted: each period while
//                               needs_scans(), at every release, and now and then otherwise
//   on_accepted_total(n)        the count alone, between scans
//   take_decision()             frames to send, maps to install (when changed), events
//
// Maps (docs/convergence.md section 4, "Movement"): a new epoch's map is
// g(base, members) (allocation.hpp) where the base is the previous agreed map. Each heartbeat
// reports the host's base; the cluster's base is the one of the highest generation (then the
// most holders, then the lowest holder); a member lacking it receives it from the lowest
// holder in map-chunk frames, and agreement waits until every member reports it. With no base
// anywhere (cold start), or once a member gave up waiting, the map is allocate(members).
//
// Hand-over protocol (docs/convergence.md): a converged epoch is the digest of the agreed
// membership and parameters. Each heartbeat carries the host's claim: the epoch whose share
// bounds what it owns (0 = owns nothing). On installing a new epoch a host at once releases
// what its new share lacks, and takes a bucket only when no live host can still own it: every
// live host claims 0 or the new epoch, or claims the previous epoch and did not own the
// bucket in it. So no bucket has two owners during joins, leaves and drains.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlb/limits.h>

#include "allocation.hpp"
#include "confirmations.hpp"
#include "engine_io.hpp"
#include "heartbeat.hpp"
#include "heartbeat_auth.hpp"
#include "heartbeat_codec.hpp"
#include "map_transfer.hpp"
#include "membership.hpp"
#include "named_owners.hpp"
#include "rules.hpp"

namespace nlb {

class ConvergenceEngine {
  public:
    // Starts `stopped` (the agent sends `start` or `suspend` per initial_state). `boot_nonce`:
    // 64 random bits per process start. Throws std::invalid_argument on a bad config.
    ConvergenceEngine(EngineConfig config, std::uint64_t boot_nonce, Millis now);

    // `arrived`: when the frame came (the kernel's receive time), if known; `now` is when it is
    // read. A peer counts as heard when its frame came: frames that queued up while this host
    // stalled must not make a peer that died meanwhile look alive (docs/convergence.md,
    // "Stalls"). Stalls are judged by `now`, the time this host gets to run.
    void on_heartbeat(std::span<const std::uint8_t> frame, Millis now, Path path = Path::segment,
                      std::optional<Millis> arrived = std::nullopt);
    // Frames read together (one wakeup of the agent: BatchReader) are decided on once, as if
    // they had all come at end_frames' time: from begin_frames() on, on_heartbeat takes each
    // frame in (membership, echoes, counters) and leaves the evaluation to end_frames. A
    // 64-host cluster's 63 frames a period then cost a few evaluations, not 63. Nothing is
    // decided differently than if the frames had come at that instant, and a frame waits at
    // most the batch (the reader's linger). take_decision() ends a batch left open.
    void begin_frames() { holding_ = true; }
    void end_frames(Millis now);
    void on_tick(Millis now);
    // The host's own link (carrier, administrative state) on the interface its frames and its
    // clients' packets use, as the agent reads it. Down, the host is the one cut off: it
    // forms no epoch (nothing it would serve reaches it, and once the link is back it would
    // serve beside the peers that took over), keeps its buckets until its peers may take
    // them (the confirmations' bound as the link went down) and then lets them go, and joins
    // again once the link is back (docs/convergence.md, "Link down").
    // `why`, when down: what the agent saw, when it is not the carrier (the kernel's word):
    // no peer's frame and no client's for two periods, a link that fails one way while this
    // host's frames still leave. Down, its frames carry kFlagLinkDown: they count only as
    // heard (ConvergenceEngine::emit).
    void on_link(bool up, Millis now, std::string why = {});
    bool link_up() const { return !link_down_; }
    // The MTU of the interface this host's frames leave by, as the agent reads it (at attach
    // and once a second); 1,500 until told. Heartbeats are sized to fit it and every peer's
    // (frame_budget), and carry it when below 1,500 so that the peers size theirs to fit it
    // too (docs/convergence.md, "Frame size").
    void set_mtu(std::size_t mtu) { mtu_ = mtu; }
    std::size_t mtu() const { return mtu_; }
    // The most bytes a heartbeat of this host takes now: this host's MTU, and for each peer
    // heard within a tolerance that said its own, that MTU; less the second path's IP and
    // UDP headers where it is below this host's (this host sends that peer copies whole, not
    // in fragments it could take). At most 1,500; at least kFrameBudgetMin unless this host's
    // own MTU is less. `by`: the host whose MTU sets it (0: none below 1,500).
    FrameBudget frame_budget(Millis now) const;
    // False (and an event saying why) when the command does not apply in this state.
    bool on_command(const Command& command, Millis now);
    // True when it changed the buckets this host reports holding (its heartbeats' dirty list).
    bool on_connection_scan(const LiveBuckets& live, std::uint64_t accepted_total, Millis now);
    // The frames of the last decision were not sent: a scan made their dirty list stale (the
    // agent's rescan before a release). Fresh ones follow soon, not a period later; at once
    // (the next take_decision) when they claimed an epoch, which may show a take.
    void frames_withheld(Millis now);
    // Between scans (the agent: once a second): the running count of connections accepted (the
    // dataplane's counters), so that the score a partition heal compares stays current.
    void on_accepted_total(std::uint64_t accepted_total);
    // Whether the next period's connection scan can change what this host does: while it
    // holds buckets it gave up, drains (the host or a rule), a probe holds a rule down, it
    // recovers from a stall, or for two periods after it gave buckets up. Otherwise,
    // converging or not, the scan only refreshes counts and the agent may space it out: a
    // scan changes only which buckets this host holds, and only for buckets it does not own;
    // every release comes with a scan of its own (the agent's apply), and the dataplane
    // records no new connection in a bucket given up, except one whose handshake the stack
    // completes just after the release (its opening record evicted meanwhile, under a SYN
    // flood): the socket program records it wherever it falls, and the next two periods'
    // scans find it.
    bool needs_scans() const;
    // Reload: this host's per-rule load weights and handling priorities (one entry per port
    // rule). A change reconverges the cluster like a joining host's would, with the same
    // hand-over of buckets; false (and nothing changed) when `rules` does not fit the rules.
    bool set_host_rules(const std::vector<HostRuleParams>& rules, Millis now);
    void set_contact_peers(std::vector<ContactAddress> peers); // cluster.peers, by a reload
    // Health probes (docs/health.md): the port rules (bit r = rule r) this host's probes hold
    // down. Where the operator's control is enabled such a rule is drained here (no new
    // connections, tracked ones finish) unless the cluster is in panic for it; published in
    // the heartbeat apart from the operator's drain, so every member can decide panic alike.
    void set_probe_down(std::uint32_t rules, Millis now);
    std::uint32_t probe_down() const { return probe_down_; }
    // Load feedback (docs/load-feedback.md): this host's smoothed load of each port rule with
    // load feedback (bit r of `rules`), published in its heartbeats; never reconverges.
    void set_loads(std::uint32_t rules, const std::array<std::uint32_t, NLB_MAX_RULES>& loads);
    // The published loads of port rule `rule`: this host's and those of the live members in
    // its view that publish one, by priority; only where the rule is enabled (not drained,
    // disabled or held down by a probe), here and there.
    std::vector<std::pair<std::uint8_t, std::uint32_t>> loads_of(std::size_t rule) const;
    // Staged configuration (docs/staged-config.md). `next` is the configuration this host is
    // to run once every live host of its cohort holds the same (or one of them switched to it
    // already): it may differ from the running one in the port rules, the VIP digest and the
    // timing, and in this host's per-rule parameters; the key, the hash seed, the mode, the
    // VLAN, the cluster IP and the priority stay (the running ones are kept). `changed_slots`
    // (bit s: rule slot s) are the slots where a packet may land in another slot or bucket
    // under `next` than under the running set, or whose mode changes: no host takes buckets
    // in them until every live host runs `next` (the agent computes them from both sets'
    // tables; every host computes the same). Staging the running set unstages. Empty: done;
    // else why not, and nothing changed.
    std::string stage(EngineConfig next, std::uint64_t changed_slots, Millis now);
    // Digests of the running and the staged configuration (everything hosts must share; 0:
    // nothing staged), as heartbeats and query show them.
    std::uint64_t active_digest() const;
    std::uint64_t staged_digest() const { return staged_ ? staged_digest_ : 0; }
    // The live hosts of this host's cohort that neither stage nor run its staged
    // configuration yet.
    std::uint64_t staged_waiting() const;
    // The rules the installed epoch serves in panic mode (as if every member were healthy).
    std::uint32_t panic_rules() const { return panic_; }
    Decision take_decision();

    // Status (nlbadm query).
    HostState state() const { return state_; }
    RefuseReason refuse_reason() const { return reason_; }
    // What the refusal is about, for people: "cluster.heartbeat_ms is 2000 here, 200 on host 1".
    const std::string& refuse_detail() const { return reason_detail_; }
    // A problem an operator should know of even while serving (empty: none), e.g. frames of
    // this cluster that fail authentication, or hearing no peer on the segment.
    std::string problem(Millis now) const;
    // Every member claims this epoch and has taken its share, this host too: each bucket has
    // exactly one owner among them as far as this host knows (query's "converged").
    bool settled() const;
    // Since a stall, until converged again: the agent keeps the watchdog expired meanwhile.
    bool recovering() const { return recovering_; }
    // The time of the latest input (-1 before any): the engine's last look, which the
    // watchdog's deadline counts from; an input more than (tolerance − 1) periods later is a
    // stall.
    Millis last_input() const { return Millis(last_input_); }
    // The watchdog's other bound, as of the last look: the soonest instant a peer may take
    // this host's buckets, a tolerance and a period after the frame of this host it took in
    // last (Confirmations), and that peer (`by` 0, `until` the largest Millis: no bound).
    // `fresh`: from every confirmation taken in so far. Otherwise it may come from a look up
    // to 1/64 period of input time earlier, and miss confirmations taken in since: earlier
    // than the true bound, never later (a nearer confirmation works it out at once). Good
    // enough to see it come nearer; what stops the dataplane is worked out fresh.
    ConfirmedBound confirmed_until(bool fresh = false) const;
    // The bound for what happens at `at` (the dataplane's deadline, a look at the clock): the
    // cached one while it lies after `at`, else worked out fresh. The cached one is never later
    // than the fresh one, so only one at or before `at` can be wrong about it.
    ConfirmedBound confirmed_until_after(Millis at) const {
        const ConfirmedBound cached = confirmed_until();
        return cached.until > at ? cached : confirmed_until(true);
    }
    // The last on_heartbeat frame was a peer's 1.2 heartbeat, authenticated and proven fresh
    // (it echoes this boot's nonce): its sender may be told apart from forgeries.
    bool last_frame_trusted() const { return last_trusted_; }
    std::uint8_t priority() const { return me_; }
    bool converged() const { return state_ == HostState::converged; }
    std::uint64_t cohort() const { return cohort_; }
    std::uint64_t members() const { return epoch_ ? epoch_members_ : 0; } // bit p-1
    std::uint64_t view() const { return view_; }
    // The live peers (a frame proving two-way contact within the tolerance), whatever their
    // state: stopped, suspended and refused ones too.
    std::uint64_t alive_peers() const { return peers_.alive_mask(); }
    std::uint8_t default_host() const;
    std::uint64_t epoch() const { return epoch_; }
    std::uint64_t map_digest() const { return target_digest_; }
    std::uint64_t base_digest() const { return base_digest_; }
    std::shared_ptr<const ClusterMap> cluster_map() const { return target_; } // this epoch's
    std::uint32_t map_generation() const { return target_gen_; }
    bool gave_up_base() const { return give_up_; }
    const EngineCounters& counters() const { return counters_; }
    std::shared_ptr<const SlotViews> maps() const { return views_; }
    std::size_t buckets_owned(std::size_t slot) const { return owned_[slot].count(); }
    // The longest tolerance (ms) of this host and its live peers that may serve, each by its
    // own timing, and this run's start wait until it has passed (a crash right after a
    // restart must not shorten the next one's): what the agent keeps for its next start
    // (HostParams::start_wait_ms).
    std::int64_t cluster_tolerance_ms(Millis now) const;
    // The operator's enable / disable / drain of port rule `rule` on this host (a reload's
    // enabled false is a drain).
    RuleControl rule_control(std::size_t rule) const { return control_[rule]; }
    const EngineConfig& config() const { return config_; }
    // Refused after a drainstop: it stops, not rejoins, once the refusal ends.
    bool refused_draining() const { return state_ == HostState::refused && refused_draining_; }

    // Heartbeats must agree for this many consecutive (half-)periods to end a convergence.
    static constexpr int kStablePeriods = 2;
    // Map chunks a holder adds to each heartbeat it sends while a member lacks the base.
    static constexpr std::size_t kChunksPerSend = 8;

  private:
    bool participating() const;
    bool serving_member() const;
    std::int64_t period() const { return config_.cluster.heartbeat_ms; }
    std::int64_t tolerance_ms() const { return period() * config_.cluster.heartbeat_tolerance; }
    // How long a peer's stream must be silent before another one of its priority is taken
    // for a restart of it rather than a second host.
    std::int64_t quiet_ms() const { return period() + period() / 2; }
    std::uint64_t claim() const;
    // What this host's heartbeats claim: its epoch also while it still has buckets to take
    // and has taken none yet. The frame that would say it took one may never leave (paused
    // just after the take, for less than its watchdog, it serves), so its peers must count
    // it as owning its share from the install on.
    std::uint64_t reported_claim() const {
        return claim() != 0 || !pending_take_ ? claim() : epoch_;
    }
    // Started less than a tolerance ago: a live peer that is silent (paused, its frames lost
    // or still on their way) may not have been heard yet. So is a host back from its own link
    // down after it let go (on_link): a peer cut off by its own link meanwhile may still hold
    // its buckets, and two such hosts alone would agree without it; and one back from it
    // alone (one that started with its link down never listened), which has heard nobody.
    bool young(std::int64_t now) const {
        return now - std::max(born_, rejoined_at_) < start_wait();
    }
    // A tolerance, or the longer one of the cluster this host ran in before it restarted.
    std::int64_t start_wait() const {
        return std::max(tolerance_ms(), std::min(config_.host.start_wait_ms, kMaxStartWaitMs));
    }
    static constexpr std::int64_t kMaxStartWaitMs = 600000;
    // Live peers outside the view that claim an epoch: they may own buckets (section 11).
    std::uint64_t outside_owners() const;
    // Peers that block try_take's takes unseen, so may own any bucket (section 11's appendix:
    // in grace, late, or heard without proof), and in `left` how long until the last ends.
    std::uint64_t grace_owners(std::int64_t now, std::uint32_t& left) const;
    bool in_grace(const Peer& peer, std::int64_t now) const;
    // Alive, it may serve, and its frames have not come for a period and a half: what it
    // installed since (its frames lost, then paused) is not known here.
    bool late_server(const Peer& peer, std::int64_t now) const;
    // The epoch a peer's pending other stream claims without this host, while it counts
    // (engine_ownership.cpp says when, and why); 0 otherwise.
    std::uint64_t rival_claim(const Peer& peer, std::int64_t now) const;
    // A dead peer keeps what it claimed for a period more (try_take); the first such end.
    std::int64_t claim_lapses(const Peer& peer) const;
    std::int64_t grace_end() const;
    // When a partition heal waiting for a group's score gives up on it (check_partition).
    static constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();
    std::int64_t partition_deadline() const {
        return partition_deadline_ > last_input_ ? partition_deadline_ : kNoDeadline;
    }
    // The epoch whose share bounds what a peer may own by now, as its last frame tells
    // (kUnknownEpoch: any bucket).
    static constexpr std::uint64_t kUnknownEpoch = ~std::uint64_t{0};
    static std::uint64_t may_own(const Heartbeat& hb);
    // It claims an epoch or is a member: silent, it may serve buckets this host cannot name.
    static bool may_serve(const Heartbeat& hb);
    // Someone serves under the installed epoch: this host, or a live member claiming it.
    bool epoch_served() const;
    std::uint64_t group_score() const;

    // What every 0x886F frame, heartbeat or map chunk, passes before its contents count: of
    // this cluster, signed when this host has a key, not this host's own echo. A failure is
    // counted under its reason.
    void count_undecodable(DecodeError error);
    // Header, cluster, HMAC, own echo, replay: true when the frame may be decoded whole.
    bool admit(std::span<const std::uint8_t> frame, const FrameHead& head, Path path,
               std::int64_t now);
    void note_unreadable(std::int64_t now, RefuseReason why);
    // Every input: stall detection, and the confirmations' bound judged at `at` (a frame's
    // arrival, which queued frames read late carry; the read time otherwise).
    void observe(std::int64_t now, std::int64_t at);
    void observe(std::int64_t now) { observe(now, now); }
    void on_stall(std::int64_t now, std::int64_t gap);
    // Lets go of every bucket and converges again, as after a stall: `what` for the event.
    void recover(std::int64_t now, const std::string& what, const std::string& why);
    void note_confirmation(const Heartbeat& hb);
    // A fresh frame that claims an epoch without this host, while this host owns buckets: of
    // a peer that served an epoch with this host (it counted this host gone), or of another
    // host whose epoch holds members of this host's (they left it). on_heartbeat lets go.
    bool dropped_by(const Heartbeat& hb) const;
    ConfirmedBound work_out_confirmed() const;
    // Contact (engine_membership.cpp).
    bool legacy(const Heartbeat& hb) const { return hb.version_minor < 2; }
    bool verified(const Heartbeat& hb) const;
    bool same_config(const Heartbeat& hb) const;
    void maybe_inherit_fixed_seed(const Heartbeat& hb, std::int64_t now);
    // Staged configuration (engine_staging.cpp).
    std::uint64_t config_digest_of(const Heartbeat& hb) const;
    // A peer mid-switch: it holds staged what this host switched to (lately) from the set
    // the peer runs, and follows within a frame. It stays in the view and the cohort
    // meanwhile, so that the cluster neither shrinks nor converges twice.
    bool switching_peer(const Heartbeat& hb, std::int64_t now) const;
    // A peer that runs what this host holds staged (this host follows at once if it switched
    // from this host's set; else it started with the new file). Not refused for it, but not
    // in the view either: a host running another set must never hold up a convergence.
    bool runs_staged(const Heartbeat& hb) const;
    bool maybe_switch(std::int64_t now);
    void switch_config(std::int64_t now, const std::string& why);
    std::string config_difference(const Heartbeat& hb) const;
    // `window`: segment_window(now), which a loop over every peer computes once.
    bool two_way(std::uint8_t p, std::int64_t now, std::int64_t window) const;
    bool two_way(std::uint8_t p, std::int64_t now) const {
        return two_way(p, now, segment_window(now));
    }
    // Why peer p is not in the view computed with `window`: the log names it, so that an
    // operator (or a failed fault test) can tell a lossy path from a peer that stopped
    // hearing this host.
    std::string left_view_because(std::uint8_t p, std::int64_t now, std::int64_t window) const;
    // The echo of this host's boot in peer p's last heartbeat, or null. Cached per heartbeat
    // stored: two_way runs for every peer on every frame, and a linear search of 64 echoes
    // there made a 64-host cluster's per-frame cost grow with the cluster (N^2 a period).
    const Heartbeat::Echo* my_echo(std::uint8_t p) const;
    bool deaf(std::int64_t now) const;
    // The peers whose segment frames are late here (a period and a half): this host asks
    // them for the second path's copies (Heartbeat::want).
    std::uint64_t want_mask(std::int64_t now) const;
    // Settled, every live peer a member: the second path is a backup (send()).
    bool backup_only() const;
    // Whether a request for the second path's copies is made and answered well within the
    // tolerance: it takes up to three periods (a period and a half late, half a period to the
    // next tick, a quarter to the answer, and their frames' way), and 100 ms more must be
    // left. Otherwise a settled host sends every other heartbeat there unasked.
    bool requests_in_time() const;
    // When the first peer whose segment frames are not late yet turns late, while requests
    // are what brings the second path's copies (so that the tick asks at once).
    std::int64_t next_late() const;
    std::int64_t segment_window(std::int64_t now) const;
    void recompute_cohort(std::int64_t now);
    void check_groups(std::int64_t now);
    // The map install would compute for the view this host agrees on now (the same members,
    // parameters and base give the same map on every member).
    const std::shared_ptr<const ClusterMap>& candidate_map();
    // How long a newly alive peer may leave this host out of its cohort before that counts
    // against this host (check_groups).
    std::int64_t contact_grace() const;
    void check_map_agreement(std::int64_t now);
    void fill_contact(Heartbeat& hb, std::int64_t now) const;
    void event(std::int64_t now, EventKind kind, std::uint8_t host, std::string text);
    // Says when the frame budget changed (frame_budget event) and when a heartbeat of `bytes`
    // does not fit it (frame_oversized, once per budget; counted each time).
    void note_frame_budget(std::int64_t now, const FrameBudget& budget, std::size_t bytes);
    // The mixed MTUs or oversized heartbeats an operator should fix ("" if none).
    std::string frame_problem(std::int64_t now) const;
    void set_state(std::int64_t now, HostState next, const std::string& why);
    void begin_convergence(std::int64_t now, const std::string& why);
    void send_soon(std::int64_t now);
    // A period's heartbeat: agreement's count of stable periods, then emit.
    void send(std::int64_t now);
    // Builds this host's heartbeat (both paths) and map chunks into the decision.
    void emit(std::int64_t now);
    // The frame just built by send() to the peers that get it by the second path.
    void send_second_path(const std::vector<std::uint8_t>& frame, std::uint64_t want,
                          std::int64_t now);
    void evaluate(std::int64_t now);
    // The evaluation frames asked for (now, or at end_frames when holding).
    void settle_frames(std::int64_t now);
    void check_partition(std::int64_t now);
    // This host's group loses a partition heal: every bucket let go, converging again.
    void yield_partition(std::int64_t now, const std::string& why);
    void recompute_view(std::int64_t now);
    bool agreement(std::int64_t now) const;
    // Whether every other member of the view was heard at or after `since`.
    bool members_heard_since(std::int64_t since) const;
    void install(std::int64_t now);
    void note_panic(std::int64_t now, std::uint32_t panic); // events when panic_ changes
    void try_take(std::int64_t now);
    void release_all(std::int64_t now, bool keep_connections);
    void release_slot(std::int64_t now, std::size_t slot);
    void refuse(std::int64_t now, RefuseReason reason, std::uint8_t because_of,
                const std::string& detail = "");
    void handle_priority_clash(const Heartbeat& hb, std::int64_t now);
    void update_held(std::int64_t now);
    void update_others_dirty();
    void rebuild_views(std::int64_t now);
    MemberParams my_params() const;
    MemberParams params_of(const Heartbeat& hb) const;
    // The allocation's inputs for the hosts of `bits`, in priority order, panic mode applied;
    // `panic` receives the rules in panic.
    std::vector<MemberParams> view_members(std::uint64_t bits, std::uint32_t& panic) const;
    void choose_base(std::uint64_t members);
    void follow_base(std::int64_t now);
    void set_base(std::int64_t now, std::shared_ptr<const ClusterMap> map, std::uint64_t digest,
                  std::uint32_t generation);
    void forget_maps(std::int64_t now);
    std::shared_ptr<const ClusterMap> held_map(std::uint64_t digest) const;
    void on_map_chunk(std::span<const std::uint8_t> frame, std::int64_t now);
    void send_chunks();
    bool member_lacks_base(const Heartbeat& hb) const;
    std::int64_t give_up_ms() const { return 2 * tolerance_ms(); }

    EngineConfig config_;
    std::uint8_t me_;
    std::uint64_t fingerprint_; // the port rules and the hash seed
    std::uint64_t seed_digest_; // flow_seed_digest of this host's seed
    std::vector<RuleMode> modes_;
    HeartbeatAuth auth_;
    ReplayGuard replay_;
    // The same heartbeat comes by both paths with one sequence number: one guard per path.
    ReplayGuard contact_replay_;
    // Map chunks have their own sequence space and a window: sent in a burst after a
    // heartbeat and reordered on the way, they must neither make that heartbeat look like a
    // replay nor each other.
    ReplayWindow chunk_replay_;
    std::uint64_t chunk_sequence_ = 0;
    Membership peers_;
    std::uint64_t nonce_;
    std::uint64_t sequence_ = 0;
    EngineCounters counters_;

    HostState state_ = HostState::stopped;
    RefuseReason reason_ = RefuseReason::none;
    std::array<RuleControl, NLB_MAX_RULES> control_{};
    std::uint32_t probe_down_ = 0; // rules this host's probes hold down
    std::uint32_t load_rules_ = 0; // set_loads
    std::array<std::uint32_t, NLB_MAX_RULES> loads_{};
    std::uint32_t panic_ = 0; // rules the installed epoch serves in panic mode
    std::int64_t started_at_ = 0;
    std::int64_t last_conflict_ = 0;
    bool warned_unauthenticated_ = false;
    std::uint64_t refused_logged_ = 0; // peers already reported as refused
    bool refused_draining_ = false;    // refused while draining: stopped, not back, at its end
    std::string reason_detail_;

    NamedOwners named_; // section 11's owners, past their namers (try_take)
    Confirmations confirmed_; // section 12: what each peer took in of this host's frames
    mutable ConfirmedBound confirmed_cache_{};    // confirmed_until's, worked out at:
    mutable std::int64_t confirmed_at_ = -1;      // this look
    mutable std::uint64_t confirmed_changes_ = 0; // and this Confirmations::changes()
    // Contact and cohorts.
    std::int64_t last_input_ = -1;
    // Up to when the confirmations' bound has been judged (observe's `at`): the look the
    // bound is worked out at. Behind last_input_ while frames that queued up are read.
    std::int64_t judged_ = -1;
    bool recovering_ = false;
    // set_mtu, and what this host said last of the frame budget (note_frame_budget): the
    // budget, and when a heartbeat last came out longer than it (oversized).
    std::size_t mtu_ = kHeartbeatMaxSize;
    std::size_t budget_said_ = kHeartbeatMaxSize;
    bool oversize_said_ = false;
    std::int64_t oversized_at_ = kNever;
    std::size_t oversized_bytes_ = 0;
    // on_link: down since the agent said so; the confirmations' bound worked out then (while
    // down no peer's frame comes to move it, and peers silent for a while bound nothing).
    bool link_down_ = false;
    std::int64_t link_down_at_ = 0;
    std::string link_why_; // on_link's why (empty: the carrier)
    ConfirmedBound link_bound_{};
    // Back up, the bound holds until every peer it was worked out from (link_peers_) has
    // confirmed a heartbeat sent since (link_up_at_): a peer that counted this host dead
    // while the link was down is dead here too, and bounds nothing otherwise.
    bool link_held_ = false;
    std::uint64_t link_peers_ = 0;
    std::int64_t link_up_at_ = 0;
    bool had_peer_ = false; // a peer proved two-way contact since this host started
    // A newly alive peer that outnumbers this host's cohort does not count it yet (within
    // contact_grace): no install until it does, or the grace ends in a refusal.
    bool awaiting_contact_ = false;
    bool last_trusted_ = false;
    // begin_frames: frames wait for end_frames. held_eval_: one of them needs an evaluation;
    // held_heard_: the members whose frames did (a member lacking our base gets it soon).
    bool holding_ = false;
    bool held_eval_ = false;
    std::uint64_t held_heard_ = 0;
    bool ever_converged_ = false; // seed inheritance only before this host ever served
    std::int64_t last_unreadable_ = -1000000000;
    RefuseReason unreadable_reason_ = RefuseReason::none;
    std::uint64_t cohort_ = 0;
    // A second host with this host's priority, heard lately: echoed so that it can prove a
    // clash (a recorded frame of this host's earlier boot cannot).
    std::uint64_t dup_nonce_ = 0;
    std::int64_t dup_heard_ = -1000000000;
    std::uint64_t map_owners_ = 0; // hosts that own buckets in target_
    // my_echo's cache: per priority, the stored heartbeat it was computed for (nonce,
    // sequence) and the echo's index in it (-1: none).
    struct EchoCache {
        std::uint64_t nonce = 0, sequence = ~std::uint64_t{0};
        int index = -1;
    };
    mutable std::array<EchoCache, NLB_MAX_HOSTS + 1> echo_cache_{};
    // Per priority, the stream last proven claiming an epoch with this host (dropped_by).
    std::array<std::uint64_t, NLB_MAX_HOSTS + 1> served_with_{};
    // Per priority, a stream whose first frame heard here already claimed an epoch without
    // this host: it formed that epoch unaware of this host (a new boot while this host's VM
    // stood still), and may own this host's buckets whatever it names (dropped_by).
    std::array<std::uint64_t, NLB_MAX_HOSTS + 1> formed_without_{};

    // Agreement.
    bool agreeing_ = false;
    int stable_ = 0;
    std::uint64_t view_ = 0;
    std::uint64_t view_digest_ = 0;
    std::int64_t view_since_ = 0; // when view_ or view_digest_ last changed
    // The rules in panic under view_: the digest hashes the controls after panic mode, so a
    // cluster leaving panic with every member healthy at once has the same digest (and map).
    std::uint32_t view_panic_ = 0;
    std::uint64_t view_key_members_ = ~std::uint64_t{0}; // cache key of view_digest_
    std::uint64_t params_generation_ = 1, view_key_generation_ = 0;

    // Epochs and ownership.
    std::uint64_t epoch_ = 0, epoch_members_ = 0, target_digest_ = 0;
    std::shared_ptr<const ClusterMap> target_;
    std::uint64_t prev_epoch_ = 0;
    std::shared_ptr<const ClusterMap> prev_;
    std::array<BucketBits, NLB_RULE_SLOTS> owned_{};
    std::array<BucketBits, NLB_RULE_SLOTS> adopt_{};
    std::int64_t adopt_until_ = 0;
    bool pending_take_ = false;
    std::uint64_t claim_sent_ = 0; // what the last heartbeat claimed
    bool announce_ = false;        // a take its heartbeats do not show yet: send with the maps
    std::vector<std::uint32_t> to_take_; // slot * NLB_BUCKETS + bucket, ours, not yet taken

    // Base map: what the next epoch's map is computed from.
    std::shared_ptr<const ClusterMap> base_;
    std::uint64_t base_digest_ = 0, prev_digest_ = 0;
    std::uint32_t base_gen_ = 0, target_gen_ = 0;
    bool target_valid_ = false; // target_ is the map this host last served under
    bool give_up_ = false;
    std::uint64_t chosen_ = 0; // the cluster's base as this host sees it (0: allocate())
    std::uint32_t chosen_gen_ = 0;
    std::uint32_t next_gen_ = 1; // generation of the map the next install computes
    std::int64_t lacking_since_ = -1;
    // The map of the view digest this host last agreed on, computed once every member
    // reports that view (candidate_map). Install takes it. Should the cluster converge again
    // before this host installed it, the members that did install it take it for their
    // base, and this host holds it without a transfer (held_map).
    std::shared_ptr<const ClusterMap> candidate_;
    std::uint64_t candidate_epoch_ = 0, candidate_digest_ = 0;
    std::vector<std::uint8_t> base_encoded_;
    std::size_t chunk_cursor_ = 0;
    MapAssembly assembly_;

    // Dirty buckets.
    LiveBuckets live_;
    std::vector<std::int64_t> released_at_; // [slot * NLB_BUCKETS + bucket], -1 = unknown
    std::array<BucketBits, NLB_RULE_SLOTS> held_{};
    std::int64_t released_last_ = -1; // when this host last gave a bucket up (needs_scans)
    std::array<BucketBits, NLB_RULE_SLOTS> others_dirty_{};

    // Staged configuration.
    std::optional<EngineConfig> staged_;
    std::uint64_t staged_digest_ = 0, staged_changed_ = 0;
    std::uint64_t switched_from_ = 0;
    std::int64_t switched_at_ = -1000000000;
    std::int64_t born_ = 0; // when this engine was made: a stage waits a tolerance for peers
    std::int64_t rejoined_at_ = std::numeric_limits<std::int64_t>::min() / 2; // young()
    // When this host last came back from a stall: its peers, expired then, are heard again
    // only as its backlog is read, so a stage waits a tolerance from it too.
    std::int64_t stalled_at_ = std::numeric_limits<std::int64_t>::min() / 2;
    // Rule slots whose buckets wait for every live host to claim the epoch installed after
    // the switch (or nothing), and whether this host installed one since.
    std::uint64_t changed_slots_ = 0;
    bool switch_install_pending_ = false;

    // Partition heuristic.
    std::uint64_t accepted_total_ = 0, accepted_base_ = 0;
    bool frozen_ = false;
    std::int64_t met_at_ = -1; // when this host met the other group(s) of a partition heal
    std::int64_t partition_deadline_ = kNoDeadline; // the first silent leader's, if any
    std::uint64_t frozen_score_ = 0;
    std::uint64_t yielded_epoch_ = 0; // the epoch this host let go of at its last yield
    // Per priority, the stream taken in when this host last yielded to its rival (once each).
    std::array<std::uint64_t, NLB_MAX_HOSTS + 1> rival_yield_{};

    // Sending.
    std::int64_t next_send_ = 0, last_send_ = -1000000000;
    std::uint64_t contact_round_ = 0; // sends so far: every other one thins the second path
    std::uint64_t wanted_ = 0;        // the want mask of this host's last heartbeat

    // Output.
    Decision out_;
    bool views_dirty_ = true;
    std::shared_ptr<const SlotViews> views_;
};

} // namespace nlb
