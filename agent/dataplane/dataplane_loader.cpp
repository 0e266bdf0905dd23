#include "dataplane_loader.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <dirent.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "errstr.hpp"
#include "link_info.hpp"
#include "map_migration.hpp"
#include "netlink.hpp"
#include "nlb.skel.h"

namespace nlb {

struct Dataplane::Pending {
    bpf_map* map;
    std::string name;
    std::string path;
    int old_fd;
    std::unique_ptr<MapMigration> migration; // null: a map that starts anew
};

namespace {

const char* const kLinkPin = "link";
// Our filter on the interface's clsact egress hook (handle "NL", first priority).
constexpr __u32 kTcHandle = 0x4e4c;
constexpr __u32 kTcPriority = 1;

[[noreturn]] void fail(const std::string& what, const std::string& why) {
    throw std::runtime_error(what + ": " + why);
}

// Pin name of each map: what an operator sees under the pin directory. nlb_hb_rate is pinned
// so that `bpftool map dump pinned .../nlb_hb_rate` names the source of a heartbeat flood,
// and so that a restarted agent does not hand every source a fresh burst; nlb_hb_trusted so
// that a restarted agent's members are still told from a flood.
struct MapPin {
    bpf_map* map;
    const char* name;
};

std::vector<MapPin> map_pins(nlb_bpf* skel) {
    return {{skel->maps.bss, "nlb_state"},          {skel->maps.nlb_ports, "nlb_ports"},
            {skel->maps.nlb_conns4, "nlb_conns4"},  {skel->maps.nlb_conns6, "nlb_conns6"},
            {skel->maps.nlb_est4, "nlb_est4"},      {skel->maps.nlb_est6, "nlb_est6"},
            {skel->maps.nlb_stats, "nlb_stats"},    {skel->maps.nlb_watchdog, "nlb_watchdog"},
            {skel->maps.nlb_hb_rate, "nlb_hb_rate"}, {skel->maps.nlb_hb_trusted, "nlb_hb_trusted"},
            {skel->maps.nlb_hb_untrusted, "nlb_hb_untrusted"}};
}

// True when it made the directory.
bool ensure_bpffs_dir(const std::string& dir, const std::string& what) {
    const bool made = mkdir(dir.c_str(), 0700) == 0;
    if (!made && errno != EEXIST)
        fail(what, "create pin directory " + dir + ": " + errstr(errno));
    struct statfs fs {};
    if (statfs(dir.c_str(), &fs) != 0)
        fail(what, "pin directory " + dir + ": " + errstr(errno));
    if (fs.f_type != BPF_FS_MAGIC)
        fail(what, "pin directory " + dir + " is not on a BPF filesystem (mount -t bpf bpf " +
                       dir + ")");
    return made;
}

// The interface of an XDP link: 0 once defunct (its interface deleted); none for a link of
// another kind, or one the kernel does not describe. `prog_id`: the program it runs.
std::optional<int> link_ifindex(int link_fd, __u32* prog_id = nullptr) {
    bpf_link_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0 || info.type != BPF_LINK_TYPE_XDP)
        return std::nullopt;
    if (prog_id)
        *prog_id = info.prog_id;
    return static_cast<int>(info.xdp.ifindex);
}

// Whether the interface at `ifindex` in this network namespace runs program `prog_id` in
// XDP: an index is a namespace's, and the link may be another namespace's interface.
bool runs_xdp_program(int ifindex, __u32 prog_id) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) != 0)
        return false;
    return prog_id && (q.prog_id == prog_id || q.drv_prog_id == prog_id ||
                       q.skb_prog_id == prog_id || q.hw_prog_id == prog_id);
}

Dataplane::PinnedLink describe_link(int link_fd) {
    Dataplane::PinnedLink link;
    __u32 prog_id = 0;
    const std::optional<int> ifindex = link_ifindex(link_fd, &prog_id);
    link.ifindex = ifindex.value_or(0);
    char name[IF_NAMESIZE] = {};
    if (link.ifindex && if_indextoname(static_cast<unsigned>(link.ifindex), name))
        link.interface = name;
    if (!ifindex || !link.ifindex)
        link.kind = Dataplane::PinnedLink::defunct;
    else if (link.interface.empty() || !runs_xdp_program(link.ifindex, prog_id))
        link.kind = Dataplane::PinnedLink::elsewhere;
    else
        link.kind = Dataplane::PinnedLink::here;
    return link;
}

// Every pin in `dir` that `keep` does not name.
void remove_pins_except(const std::string& dir, const std::vector<std::string>& keep) {
    if (DIR* d = opendir(dir.c_str())) {
        while (const dirent* e = readdir(d)) {
            const std::string name = e->d_name;
            if (name != "." && name != ".." &&
                std::find(keep.begin(), keep.end(), name) == keep.end())
                unlinkat(dirfd(d), e->d_name, 0);
        }
        closedir(d);
    }
}

// The TC egress program (bpf/nd_egress.h); replaces the one an earlier agent attached.
// True when it made the clsact qdisc.
bool attach_egress(nlb_bpf* skel, int ifindex, const std::string& what) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        fail(what, "create the clsact qdisc: " + errstr(err));
    const bool made = err == 0;
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(skel->progs.nlb_nd_egress),
                .flags = BPF_TC_F_REPLACE, .handle = kTcHandle, .priority = kTcPriority);
    if ((err = bpf_tc_attach(&hook, &opts))) {
        if (made) { // both hooks: only that deletes the qdisc (one alone flushes its filters)
            LIBBPF_OPTS(bpf_tc_hook, qdisc, .ifindex = ifindex,
                        .attach_point =
                            static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
            bpf_tc_hook_destroy(&qdisc);
        }
        fail(what, "attach the TC egress program: " + errstr(err));
    }
    return made;
}

// Our filter only: the clsact qdisc may carry other programs. Absent (ENOENT), or no clsact
// at all (EINVAL), is what was asked for.
int detach_egress(int ifindex) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    int err = bpf_tc_detach(&hook, &opts);
    return err == -ENOENT || err == -EINVAL ? 0 : err;
}

// The size of the map pinned at `path` (0 if it cannot be read), or nothing when there is no
// pin: an adopted table keeps the size it was created with (resizing it would mean copying
// every connection).
std::optional<std::uint32_t> pinned_entries(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0)
        return std::nullopt;
    bpf_map_info info{};
    __u32 len = sizeof(info);
    std::uint32_t n = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.max_entries : 0;
    close(fd);
    return n;
}

} // namespace

std::unique_ptr<Dataplane> Dataplane::load(const std::string& pin_dir, const std::string& what,
                                           const TableSizes& sizes) {
    const bool made_dir = ensure_bpffs_dir(pin_dir, what);
    std::unique_ptr<Dataplane> dp(new Dataplane);
    dp->pin_dir_ = pin_dir;
    dp->made_pin_dir_ = made_dir;
    try {
        load_into(*dp, what, sizes);
    } catch (...) {
        dp->drop_fresh_pins();
        throw;
    }
    return dp;
}

void Dataplane::drop_fresh_pins() {
    for (const std::string& path : fresh_pins_)
        unlink(path.c_str());
    fresh_pins_.clear();
    if (made_pin_dir_)
        rmdir(pin_dir_.c_str()); // only if nothing else is in it
}

void Dataplane::load_into(Dataplane& d, const std::string& what, const TableSizes& sizes) {
    const std::string& pin_dir = d.pin_dir_;
    Dataplane* dp = &d;
    dp->skel_ = nlb_bpf__open();
    if (!dp->skel_)
        fail(what, "open the XDP object: " + errstr(errno));
    for (const auto& p : map_pins(dp->skel_)) {
        std::string path = pin_dir + "/" + p.name;
        if (int err = bpf_map__set_pin_path(p.map, path.c_str()))
            fail(what, "pin path " + path + ": " + errstr(err));
    }
    struct Table {
        bpf_map* map;
        const char* name;
        std::uint32_t entries;
    };
    // No table pinned before: the load creates all four, empty (see validate_new below).
    bool new_tables = true;
    for (const Table& t : {Table{dp->skel_->maps.nlb_conns4, "nlb_conns4", sizes.opening},
                           Table{dp->skel_->maps.nlb_conns6, "nlb_conns6", sizes.opening},
                           Table{dp->skel_->maps.nlb_est4, "nlb_est4", sizes.established},
                           Table{dp->skel_->maps.nlb_est6, "nlb_est6", sizes.established}}) {
        const std::optional<std::uint32_t> pinned = pinned_entries(pin_dir + "/" + t.name);
        new_tables = new_tables && !pinned;
        if (int err = bpf_map__set_max_entries(t.map, pinned.value_or(0) ? *pinned : t.entries))
            fail(what, std::string("size ") + t.name + ": " + errstr(err));
    }
    const std::uint32_t filter_entries =
        ConnFilter::entries_for(bpf_map__max_entries(dp->skel_->maps.nlb_conns4),
                                bpf_map__max_entries(dp->skel_->maps.nlb_est4));
    if (int err = bpf_map__set_max_entries(dp->skel_->maps.nlb_conn_filter, filter_entries))
        fail(what, "size the connection filter: " + errstr(err));
    // A pin an earlier agent left in another layout: this build's map is created beside it,
    // filled from it after load and pinned in its place once the new program runs
    // (finish_migration); until then the old dataplane is untouched.
    for (const auto& p : map_pins(dp->skel_)) {
        std::string path = pin_dir + "/" + p.name;
        int fd = bpf_obj_get(path.c_str());
        if (fd < 0)
            continue;
        if (pin_reusable(fd, p.map)) {
            close(fd);
            continue;
        }
        dp->pending_.push_back({p.map, p.name, path, fd, nullptr});
        if (int err = bpf_map__set_pin_path(p.map, nullptr))
            fail(what, std::string("unpin ") + p.name + ": " + errstr(err));
    }
    // What the load will pin where nothing is pinned. libbpf unpins them itself when the load
    // fails; after it, drop_fresh_pins does.
    for (const auto& p : map_pins(dp->skel_)) {
        const char* path = bpf_map__pin_path(p.map);
        if (path && access(path, F_OK) != 0)
            dp->fresh_pins_.emplace_back(path);
    }
    if (int err = nlb_bpf__load(dp->skel_)) {
        if (err == -EPERM || err == -EACCES)
            fail(what, "load the XDP program: " + errstr(err) + " (run as root, with CAP_BPF "
                                                                 "and CAP_NET_ADMIN)");
        fail(what, "load the XDP program: " + errstr(err) +
                       (err == -EINVAL ? " (maps pinned in " + pin_dir +
                                             " from another version? detach first)"
                                       : ""));
    }
    for (Pending& m : dp->pending_) {
        const int fd = bpf_map__fd(m.map);
        try {
            if (!holds_kernel_object(fd))
                m.migration = std::make_unique<MapMigration>(m.old_fd, fd);
            MigrationCount c = m.migration ? m.migration->copy() : MigrationCount{};
            dp->migrated_.push_back({m.name, c.copied, c.refused, !m.migration});
        } catch (const std::exception& e) {
            fail(what, "convert the pinned " + m.name + " from an earlier layout: " + e.what() +
                           " (the dataplane is left as it was; detach to start afresh)");
        }
    }
    dp->maps_ = std::make_unique<DataplaneMaps>(DataplaneMapFds{
        bpf_map__fd(dp->skel_->maps.bss), bpf_map__fd(dp->skel_->maps.nlb_ports),
        bpf_map__fd(dp->skel_->maps.nlb_conns4), bpf_map__fd(dp->skel_->maps.nlb_conns6),
        bpf_map__fd(dp->skel_->maps.nlb_stats), bpf_map__fd(dp->skel_->maps.nlb_est4),
        bpf_map__fd(dp->skel_->maps.nlb_est6), bpf_map__fd(dp->skel_->maps.nlb_hb_trusted),
        bpf_map__fd(dp->skel_->maps.nlb_hb_untrusted)});
    try {
        dp->filter_ = std::make_unique<ConnFilter>(
            bpf_map__fd(dp->skel_->maps.nlb_conn_filter), filter_entries);
    } catch (const std::exception& e) {
        fail(what, e.what());
    }
    // No program of this load has run yet, and no earlier one writes tables it never had.
    if (new_tables)
        dp->filter_->validate_new();
    dp->sizes_ = {bpf_map__max_entries(dp->skel_->maps.nlb_conns4),
                  bpf_map__max_entries(dp->skel_->maps.nlb_est4)};
    // A new watchdog map holds no timer. Armed now for what was left of the old one's
    // deadline, before the new program is switched in: whatever fails after the switch, a
    // dataplane whose agent does not come back still stops on time.
    const nlb_config& cfg = dp->maps_->state().config;
    if (!dp->pending_.empty() && cfg.alive && cfg.watchdog_timeout_ns) {
        try {
            // A deadline that has passed stops it: its agent has not refreshed it since.
            dp->arm_watchdog(cfg.watchdog_deadline_ns, cfg.watchdog_timeout_ns);
        } catch (const std::exception& e) {
            fail(what, std::string("keep the adopted watchdog's deadline: ") + e.what());
        }
    }
}

std::unique_ptr<Dataplane> Dataplane::adopt(const std::string& pin_dir, const TableSizes& sizes) {
    std::string link_path = pin_dir + "/" + kLinkPin;
    int link_fd = bpf_obj_get(link_path.c_str());
    if (link_fd < 0)
        return nullptr;
    const PinnedLink link = describe_link(link_fd);
    if (link.kind == PinnedLink::defunct) {
        close(link_fd);
        fail("adopt " + link_path, "not an XDP link on an existing interface");
    }
    if (link.kind == PinnedLink::elsewhere) {
        close(link_fd);
        fail("adopt " + link_path,
             link.why_elsewhere() + ": run the agent in the namespace it was attached in");
    }
    const int ifindex = link.ifindex;
    const std::string name = link.interface;
    std::string what = "adopt " + name;
    std::unique_ptr<Dataplane> dp;
    try {
        dp = load(pin_dir, what, sizes);
    } catch (...) {
        close(link_fd);
        throw;
    }
    dp->ifname_ = name;
    dp->ifindex_ = ifindex;
    dp->link_fd_ = link_fd;
    dp->adopted_ = true;
    if (int err = bpf_link_update(link_fd, bpf_program__fd(dp->skel_->progs.nlb_xdp), nullptr))
        fail(what, "replace the attached program: " + errstr(err));
    // The socket program too, before the second pass: until then the old one writes the
    // old tables.
    dp->start_socket_program();
    dp->finish_migration(what);
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) == 0)
        dp->generic_ = q.attach_mode == XDP_ATTACHED_SKB;
    // The earlier agent chose; a mode that cannot work here (an older agent's native XDP on
    // a veth) is said, not silently kept.
    XdpChoice fits = choose_xdp_mode(XdpMode::automatic, link_driver(name));
    dp->mode_reason_ = "kept from the pinned attachment";
    if (fits.generic && !dp->generic_)
        dp->mode_reason_ += "; wrong here: " + fits.reason + " (detach and attach again)";
    return dp;
}

std::unique_ptr<Dataplane> Dataplane::attach(const std::string& ifname,
                                             const std::string& pin_dir, XdpMode mode,
                                             const TableSizes& sizes) {
    std::string what = "attach " + ifname;
    int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (!ifindex)
        fail(what, "no such interface");
    if (auto dp = adopt(pin_dir, sizes)) {
        if (dp->ifindex_ != ifindex)
            fail(what, "pin directory " + pin_dir + " holds the dataplane of " + dp->ifname_ +
                           " (detach it first)");
        return dp;
    }
    std::unique_ptr<Dataplane> dp = load(pin_dir, what, sizes);
    dp->ifname_ = ifname;
    dp->ifindex_ = ifindex;
    try {
        dp->attach_link(mode, what);
    } catch (...) {
        // Nothing of this attach stays: the link (closed with dp), its pin, the socket
        // program, the maps it pinned.
        unlink((pin_dir + "/" + kLinkPin).c_str());
        dp->stop_socket_program();
        dp->drop_fresh_pins();
        throw;
    }
    return dp;
}

void Dataplane::attach_link(XdpMode mode, const std::string& what) {
    Dataplane* dp = this;
    const int ifindex = ifindex_;
    const std::string& ifname = ifname_;
    const std::string& pin_dir = pin_dir_;
    int prog_fd = bpf_program__fd(dp->skel_->progs.nlb_xdp);
    auto busy = [&](int fd) {
        if (fd == -EBUSY || fd == -EEXIST) {
            __u32 id = 0;
            bpf_xdp_query_id(ifindex, 0, &id);
            fail(what, "another XDP program (id " + std::to_string(id) + ") is attached");
        }
    };
    const std::string driver = link_driver(ifname);
    XdpChoice choice = choose_xdp_mode(mode, driver);
    int fd = -EOPNOTSUPP;
    if (!choice.generic) {
        LIBBPF_OPTS(bpf_link_create_opts, native, .flags = XDP_FLAGS_DRV_MODE);
        fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &native);
        busy(fd);
        if (fd < 0 && !choice.fall_back)
            fail(what, "XDP native mode: " + errstr(fd));
        if (fd < 0)
            choice = {true, false, generic_fallback_reason(driver, errstr(fd))};
    }
    if (choice.generic) {
        LIBBPF_OPTS(bpf_link_create_opts, generic, .flags = XDP_FLAGS_SKB_MODE);
        int gfd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &generic);
        busy(gfd);
        if (gfd < 0)
            fail(what, "XDP generic mode (" + choice.reason + "): " + errstr(gfd));
        fd = gfd;
        dp->generic_ = true;
    }
    dp->mode_reason_ = choice.reason;
    dp->link_fd_ = fd;
    std::string link_path = pin_dir + "/" + kLinkPin;
    if (int err = bpf_obj_pin(fd, link_path.c_str()))
        fail(what, "pin the link at " + link_path + ": " + errstr(err));
    dp->start_socket_program();
    dp->finish_migration(what);
}

void Dataplane::finish_migration(const std::string& what) {
    if (pending_.empty())
        return;
    // Neither old program runs any more (XDP and socket program switched): what they
    // recorded since the first copy is final.
    for (std::size_t i = 0; i < pending_.size(); ++i) {
        if (!pending_[i].migration)
            continue;
        MigrationCount c = pending_[i].migration->copy(true);
        migrated_[i].copied += c.copied;
        migrated_[i].refused += c.refused;
    }
    // rename() swaps a pin atomically: a crash leaves the old map or the new one, never none.
    for (Pending& m : pending_) {
        const std::string tmp = m.path + "_migrated"; // the bpffs takes no dot in a name
        unlink(tmp.c_str());
        if (int err = bpf_obj_pin(bpf_map__fd(m.map), tmp.c_str()))
            fail(what, "pin the converted " + m.name + " at " + tmp + ": " + errstr(err));
        if (rename(tmp.c_str(), m.path.c_str()) != 0)
            fail(what, "replace the pinned " + m.name + ": " + errstr(errno));
        bpf_map__set_pin_path(m.map, m.path.c_str()); // so that detach unpins it
        close(m.old_fd);
        m.old_fd = -1;
    }
    pending_.clear();
    // Pins of maps this build no longer has would outlive every detach.
    std::vector<std::string> known{kLinkPin, kSockopsPin};
    for (const auto& p : map_pins(skel_))
        known.emplace_back(p.name);
    remove_pins_except(pin_dir_, known);
}

std::string Dataplane::PinnedLink::why_elsewhere() const {
    return "its XDP link's interface (index " + std::to_string(ifindex) +
           ") is not in this network namespace" +
           (interface.empty() ? std::string() : " (" + interface + " here runs another program)");
}

Dataplane::PinnedLink Dataplane::pinned_link(const std::string& pin_dir) {
    const int fd = bpf_obj_get((pin_dir + "/" + kLinkPin).c_str());
    if (fd < 0)
        return {};
    PinnedLink link = describe_link(fd);
    close(fd);
    return link;
}

bool Dataplane::pinned_link_defunct(const std::string& pin_dir) {
    const int fd = bpf_obj_get((pin_dir + "/" + kLinkPin).c_str());
    if (fd < 0)
        return false;
    const bool defunct = link_ifindex(fd) == 0;
    close(fd);
    return defunct;
}

bool Dataplane::link_defunct() const {
    return link_fd_ >= 0 && link_ifindex(link_fd_) == 0;
}

void Dataplane::remove_pins(const std::string& pin_dir) {
    remove_pins_except(pin_dir, {});
    rmdir(pin_dir.c_str());
}

void Dataplane::detach() {
    stop_socket_program();
    if (detach_egress(ifindex_) == 0)
        drop_qdisc_if_ours();
    std::string link_path = pin_dir_ + "/" + kLinkPin;
    unlink(link_path.c_str());
    if (link_fd_ >= 0) {
        bpf_link_detach(link_fd_);
        close(link_fd_);
        link_fd_ = -1;
    }
    for (const auto& p : map_pins(skel_))
        bpf_map__unpin(p.map, nullptr);
    rmdir(pin_dir_.c_str());
}

void Dataplane::set_nd_egress(bool on) {
    std::string what = "attach " + ifname_;
    std::uint8_t& flags = maps_->state().config.flags;
    if (on) {
        if (attach_egress(skel_, ifindex_, what))
            flags = static_cast<std::uint8_t>(flags | NLB_CFG_QDISC_OURS);
        return;
    }
    if (int err = detach_egress(ifindex_))
        fail(what, "detach the TC egress program: " + errstr(err));
    drop_qdisc_if_ours();
}

void Dataplane::drop_qdisc_if_ours() {
    std::uint8_t& flags = maps_->state().config.flags;
    if (!(flags & NLB_CFG_QDISC_OURS))
        return;
    // Another program's filter on either hook (added since; the hook's destruction would take
    // it along) keeps the qdisc, now theirs. A qdisc gone already dumps no filter.
    const int egress = netlink::count_filters(ifindex_, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS));
    const int ingress = netlink::count_filters(ifindex_, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS));
    if (egress == 0 && ingress == 0) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_,
                    .attach_point =
                        static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
        bpf_tc_hook_destroy(&hook);
    }
    if (egress >= 0 && ingress >= 0) // else unknown: asked again at the next detach
        flags = static_cast<std::uint8_t>(flags & ~NLB_CFG_QDISC_OURS);
}

bool Dataplane::nd_egress_attached(int ifindex) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    return bpf_tc_query(&hook, &opts) == 0;
}

bool Dataplane::arm_watchdog(std::uint64_t deadline_ns, std::uint64_t timeout_ns) {
    maps_->state().config.watchdog_timeout_ns = timeout_ns;
    std::uint8_t frame[64] = {};
    std::memcpy(frame, &deadline_ns, sizeof(deadline_ns));
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame));
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.nlb_watchdog_arm), &opts);
    if (!err && opts.retval == XDP_DROP)
        return false;
    if (err || opts.retval != XDP_PASS)
        throw std::runtime_error("arm the watchdog: " +
                                 (err ? errstr(err) : std::string("timer refused")));
    return true;
}

Dataplane::~Dataplane() {
    for (const Pending& m : pending_)
        if (m.old_fd >= 0)
            close(m.old_fd);
    maps_.reset(); // unmap before the skeleton closes the maps
    filter_.reset();
    if (link_fd_ >= 0)
        close(link_fd_);
    if (sockops_fd_ >= 0)
        close(sockops_fd_);
    nlb_bpf__destroy(skel_);
}

} // namespace nlb
