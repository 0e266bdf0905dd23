// Loads the XDP program, pins its maps and its link under a pin directory, attaches it to an
// interface, and finds it again after an agent restart. The pins keep the dataplane (and its
// connection table) alive while no agent runs; the watchdog keeps such a dataplane from
// serving buckets the cluster has moved on from.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlb/limits.h>

#include "conn_filter.hpp"
#include "dataplane_maps.hpp"
#include "xdp_mode.hpp"

struct nlb_bpf;

namespace nlb {

// Entries per family of the connection tables (host.opening_connections,
// host.established_connections). An adopted dataplane keeps the sizes it was created with.
struct TableSizes {
    std::uint32_t opening = NLB_CONN_TABLE_ENTRIES;
    std::uint32_t established = NLB_EST_TABLE_ENTRIES;
};

// A map an earlier agent pinned in another layout, carried into this build's (map_migration).
struct MigratedMap {
    std::string name;
    std::uint64_t copied = 0;  // entries carried over
    std::uint64_t refused = 0; // entries the new map had no room for
    bool fresh = false;        // holds kernel objects (the watchdog's timer): starts anew
};

struct SeedResult {
    std::uint64_t recorded = 0; // in the established table now (or none of the rules')
    std::uint64_t full = 0;     // not recorded: the table is full
};

class Dataplane {
  public:
    // Attaches to `ifname` in the mode choose_xdp_mode picks (xdp_mode.hpp), or adopts the
    // attachment pinned in `pin_dir` by an earlier agent: the new program replaces the old
    // one atomically and the maps (tables, tracked connections, counters) carry over.
    // Throws std::runtime_error: "attach eth0: <reason>".
    static std::unique_ptr<Dataplane> attach(const std::string& ifname, const std::string& pin_dir,
                                             XdpMode mode = XdpMode::automatic,
                                             const TableSizes& sizes = {});
    // The attachment pinned in `pin_dir`, or nullptr when there is none.
    static std::unique_ptr<Dataplane> adopt(const std::string& pin_dir,
                                            const TableSizes& sizes = {});

    // The XDP link pinned in `pin_dir`, before anything is adopted: none; defunct (its
    // interface deleted: the kernel keeps the link with index 0, and no program can take it
    // over); another network namespace's (its index names an interface here that does not
    // run the link's program: a bpffs is shared by every namespace, an index is not, and the
    // name that index has here is another interface's); or on `interface` here.
    struct PinnedLink {
        enum Kind { none, defunct, elsewhere, here } kind = none;
        std::string interface; // here: its name; elsewhere: what the index names here, if any
        int ifindex = 0;
        // Why an `elsewhere` link is not this namespace's, for the error that refuses it.
        std::string why_elsewhere() const;
    };
    static PinnedLink pinned_link(const std::string& pin_dir);
    // For pins no build here can adopt (nlb-agent --release-dataplane, an agent that finds
    // pins whose interface is gone): whether the pinned XDP link's interface is gone, and
    // every pin in `pin_dir` removed with the directory (the link goes with its pin).
    static bool pinned_link_defunct(const std::string& pin_dir);
    static void remove_pins(const std::string& pin_dir);
    // The interface this dataplane is attached to was deleted (the link is defunct), whatever
    // a new interface under its name and index looks like.
    bool link_defunct() const;

    ~Dataplane(); // closes this process's handles; the pinned dataplane stays
    Dataplane(const Dataplane&) = delete;
    Dataplane& operator=(const Dataplane&) = delete;

    // Detaches the program and removes every pin (the connection table goes with them).
    void detach();

    DataplaneMaps& maps() { return *maps_; }
    // Invalid (every lookup made) until ConnectionTracking rebuilds it.
    ConnFilter& conn_filter() { return *filter_; }
    const std::string& interface() const { return ifname_; }
    int ifindex() const { return ifindex_; }
    bool generic() const { return generic_; } // generic (skb) XDP instead of native
    // Why this mode: "veth: native XDP runs after ...", "--xdp-mode generic", ...
    const std::string& mode_reason() const { return mode_reason_; }
    bool adopted() const { return adopted_; } // found pinned, not freshly attached
    // The pinned maps this agent converted from an earlier agent's layout (empty: none).
    const std::vector<MigratedMap>& migrated() const { return migrated_; }
    const TableSizes& table_sizes() const { return sizes_; } // in effect (adopted: pinned)

    // The TC egress program that keeps the host's own neighbour discovery from a VIP from
    // advertising the host's MAC (bpf/nd_egress.h): only a cluster with an IPv6 VIP needs it,
    // and it looks at every IPv6 packet the host sends, so the agent attaches it exactly then.
    // Neither attach nor adopt touches it: the agent says which, after every attach and
    // adoption (a restarted agent may run a config with other VIPs than its predecessor).
    // Idempotent; on replaces an earlier agent's program, off removes it, and the clsact
    // qdisc with it where an nlb attach made it and no other filter hangs on it. Throws on
    // failure.
    void set_nd_egress(bool on);
    // Whether nlb's egress filter is on `ifindex` (tests).
    static bool nd_egress_attached(int ifindex);

    // Keeps the dataplane accepting until `deadline_ns` (CLOCK_MONOTONIC), at most
    // `timeout_ns` from now (see struct nlb_config). False, and the dataplane stopped, when
    // the deadline has passed. Throws when the timer cannot be armed.
    bool arm_watchdog(std::uint64_t deadline_ns, std::uint64_t timeout_ns);

    // The socket program (bpf/sockops.h) that records the connections this host's stack
    // establishes: attached to the root cgroup through a link pinned beside the XDP link, for
    // this network namespace only. Without it (no cgroup v2, a kernel before 5.15) connections
    // are tracked from their SYN alone, evictable; socket_program_error() says why.
    bool socket_program() const { return sockops_fd_ >= 0; }
    const std::string& socket_program_error() const { return sockops_error_; }
    // Records connections the stack had before the socket program ran (socket_table.hpp).
    SeedResult seed_established(std::span<const nlb_tuple> connections);

  private:
    static constexpr const char* kSockopsPin = "sockops_link"; // the socket program's link
    Dataplane() = default;
    static std::unique_ptr<Dataplane> load(const std::string& pin_dir, const std::string& what,
                                           const TableSizes& sizes);
    static void load_into(Dataplane& dp, const std::string& what, const TableSizes& sizes);
    // A fresh attach's XDP link on ifname_, pinned, then the socket program. Throws.
    void attach_link(XdpMode mode, const std::string& what);
    void start_socket_program(); // never throws: failure leaves socket_program() false
    // After the new program is attached: what the old one recorded meanwhile, then the new
    // maps pinned where the old ones were. Throws.
    void finish_migration(const std::string& what);
    void stop_socket_program();
    // A load or attach that fails leaves the pin directory as it found it: the maps it
    // pinned anew (their memory, and sizes a later attach would take for the configured
    // ones) and the directory itself, if it made it.
    void drop_fresh_pins();
    // The clsact qdisc, once nlb's filter is off it: removed if an nlb attach made it
    // (NLB_CFG_QDISC_OURS) and nothing else hangs on it.
    void drop_qdisc_if_ours();

    nlb_bpf* skel_ = nullptr;
    std::unique_ptr<DataplaneMaps> maps_;
    std::unique_ptr<ConnFilter> filter_;
    std::string pin_dir_;
    std::string ifname_;
    int ifindex_ = 0;
    int link_fd_ = -1;
    bool generic_ = false;
    std::string mode_reason_;
    bool adopted_ = false;
    TableSizes sizes_;
    int sockops_fd_ = -1;
    std::string sockops_error_;
    struct Pending; // a pinned map being converted: its old handle and the new map
    std::vector<Pending> pending_;
    std::vector<MigratedMap> migrated_;
    std::vector<std::string> fresh_pins_; // pinned by this load where nothing was
    bool made_pin_dir_ = false;
};

} // namespace nlb
