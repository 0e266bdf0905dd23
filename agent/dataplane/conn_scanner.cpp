#include "conn_scanner.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include <nlb/limits.h>
#include <nlb/maps.h>

#include "conn_filter.hpp"
#include "conn_scan.skel.h"
#include "errstr.hpp"
#include "table_scan.hpp"

namespace nlb {

namespace {

void mark(ConnScan& out, const nlb_conn& c) {
    if (c.rule < NLB_RULE_SLOTS && c.bucket < NLB_BUCKETS)
        out.live_buckets[c.rule].set(c.bucket);
}

bool older(std::uint64_t stamp_ns, std::uint64_t now_ns, std::uint64_t age_ns) {
    return now_ns > stamp_ns && now_ns - stamp_ns > age_ns;
}

// When a record is over, as bpf/conn_scan.bpf.c judges it too.
bool opening_over(const nlb_conn& c, std::uint64_t now_ns, bool age_opening) {
    return age_opening && older(c.opened_ns, now_ns, NLB_OPENING_MAX_AGE_NS);
}

bool established_over(const nlb_conn& c, std::uint64_t now_ns) {
    return c.closed_ns && older(c.closed_ns, now_ns, NLB_CONN_CLOSE_GRACE_NS);
}

// Opening before established: the socket program moves a record from the one to the other
// while this runs. Read in this order, a record moved before the opening scan reached it is in
// the established table before that scan begins, and one moved later was seen opening; in the
// other order a connection established between the two scans would be in neither, and its
// bucket released as clean (a second host would then take its packets).
template <typename Key>
void scan_pair(int opening_fd, int est_fd, std::uint64_t now_ns, bool age_opening, ConnScan& out) {
    auto failed = [&] {
        out.complete = false;
        out.error = errno;
    };
    auto opening = [&](const Key&, const nlb_conn& c) {
        if (opening_over(c, now_ns, age_opening)) {
            out.opening_expired++;
            return true;
        }
        out.opening++;
        out.live++;
        if (c.rule < NLB_RULE_SLOTS)
            out.live_by_rule[c.rule]++;
        mark(out, c);
        return false;
    };
    auto established = [&](const Key&, const nlb_conn& c) {
        if (c.closed_ns) {
            // Its socket is gone: nothing is left to serve, so it keeps no bucket dirty (a
            // drainstop ends when the last socket closes); the record only steers stray
            // packets through the grace period while the bucket is still tracked here.
            if (!established_over(c, now_ns)) {
                out.closing++;
                return false;
            }
            out.expired++;
            return true;
        }
        out.established++;
        out.live++;
        if (c.rule < NLB_RULE_SLOTS)
            out.live_by_rule[c.rule]++;
        mark(out, c);
        return false;
    };
    // A read that fails midway leaves the scan a part of the records: said, not hidden.
    if (!scan_table<Key>(opening_fd, opening))
        failed();
    if (!scan_table<Key>(est_fd, established))
        failed();
}

// A tuple as a string of bytes, for the set of sockets.
template <typename Key> std::string bytes(const Key& k) {
    return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

nlb_conn_key4 key4(const nlb_tuple& t) {
    return {.saddr = t.saddr[0], .daddr = t.daddr[0], .sport = t.sport, .dport = t.dport};
}

nlb_conn_key6 key6(const nlb_tuple& t) {
    nlb_conn_key6 k{};
    std::memcpy(k.saddr, t.saddr, sizeof(k.saddr));
    std::memcpy(k.daddr, t.daddr, sizeof(k.daddr));
    k.sport = t.sport;
    k.dport = t.dport;
    return k;
}

template <typename Key> using Orphans = std::vector<std::pair<Key, nlb_conn>>;

template <typename Key>
Orphans<Key> find_orphans(int fd, const std::unordered_set<std::string>& sockets,
                          std::uint64_t listed_at_ns) {
    Orphans<Key> orphans;
    scan_table<Key>(fd, [&](const Key& k, const nlb_conn& c) {
        if (!c.closed_ns && c.opened_ns < listed_at_ns && !sockets.count(bytes(k)))
            orphans.emplace_back(k, c);
        return false;
    });
    return orphans;
}

template <typename Key>
std::uint64_t end_orphans_in(int fd, const Orphans<Key>& orphans,
                             const std::unordered_set<std::string>& listed_again,
                             std::uint64_t now_ns) {
    std::uint64_t n = 0;
    for (auto& [k, c] : orphans) {
        if (listed_again.count(bytes(k)))
            continue;
        // Only the record judged: its tuple may belong to a new connection by now (the walk
        // and the socket listing take a while), whose record must not be stamped closed.
        nlb_conn now{};
        if (bpf_map_lookup_elem(fd, &k, &now) != 0 || !same_record(c, now))
            continue;
        now.closed_ns = now_ns;
        // BPF_EXIST: a record the dataplane removed meanwhile stays removed
        n += bpf_map_update_elem(fd, &k, &now, BPF_EXIST) == 0;
    }
    return n;
}

// One iterator walk over a table: the keys it hands out are records to delete, done once the
// walk is over (a delete in a bucket the walk will come back to would shift its place there,
// and a record behind it would be skipped), each only if `over` still says so of what the key
// holds then: the tuple may have been opened anew by another connection since the walk passed
// it. Bounded by the table's size. False on failure.
template <typename Over>
bool walk(bpf_link* link, int table_fd, std::size_t key_size, Over over, std::string& error) {
    int fd = bpf_iter_create(bpf_link__fd(link));
    if (fd < 0) {
        error = "start a scan iterator: " + errstr(errno);
        return false;
    }
    std::vector<std::uint8_t> dead;
    std::vector<std::uint8_t> buf(65536);
    for (;;) {
        ssize_t n = read(fd, buf.data(), buf.size());
        if (n > 0) {
            dead.insert(dead.end(), buf.begin(), buf.begin() + n);
            continue;
        }
        if (n == 0)
            break;
        // EAGAIN: a million records passed without a key to hand out; the walk goes on
        // from where it stopped.
        if (errno == EAGAIN || errno == EINTR)
            continue;
        error = "read a scan iterator: " + errstr(errno);
        close(fd);
        return false;
    }
    close(fd);
    for (std::size_t at = 0; at + key_size <= dead.size(); at += key_size) {
        nlb_conn now{};
        if (bpf_map_lookup_elem(table_fd, dead.data() + at, &now) == 0 && over(now))
            bpf_map_delete_elem(table_fd, dead.data() + at);
    }
    return true;
}

} // namespace

ScanFamilies families_to_walk(const ConnFilter& filter) {
    return {!filter.holds_nothing(NLB_FAMILY_V4), !filter.holds_nothing(NLB_FAMILY_V6)};
}

ConnScan scan_by_copy(const DataplaneMaps& maps, std::uint64_t now_ns, bool age_opening,
                      ScanFamilies families) {
    ConnScan out;
    if (families.v4)
        scan_pair<nlb_conn_key4>(maps.fds().conns4, maps.fds().est4, now_ns, age_opening, out);
    if (families.v6)
        scan_pair<nlb_conn_key6>(maps.fds().conns6, maps.fds().est6, now_ns, age_opening, out);
    return out;
}

bool kernel_refuses_iterators() {
    btf* vmlinux = btf__load_vmlinux_btf();
    if (!vmlinux)
        return false; // no BTF: the kernel cannot run them, which is another reason
    const int target = btf__find_by_name_kind(vmlinux, "bpf_iter_bpf_map_elem", BTF_KIND_FUNC);
    btf__free(vmlinux);
    if (target < 0)
        return false;
    bpf_insn ret0[2] = {};
    ret0[0].code = BPF_ALU64 | BPF_MOV | BPF_K; // r0 = 0
    ret0[0].dst_reg = BPF_REG_0;
    ret0[1].code = BPF_JMP | BPF_EXIT;
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_ITER,
                .attach_btf_id = static_cast<__u32>(target));
    const int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "nlb_probe", "GPL", ret0, 2, &opts);
    if (fd >= 0) {
        ::close(fd);
        return false;
    }
    return errno == EPERM;
}

ConnScanner::ConnScanner(const DataplaneMaps& maps) : maps_(maps) {
    skel_ = conn_scan_bpf__open();
    if (!skel_) {
        error_ = "open the scan programs: " + errstr(errno);
        return;
    }
    if (int err = conn_scan_bpf__load(skel_)) {
        // By the error, not by kernel_refuses_iterators(): its probe parses the kernel's BTF
        // again (0.2-0.4 s of CPU), which 64 agents starting at once on one machine felt.
        error_ = "load the scan programs: " + errstr(err) +
                 (err == -EPERM || err == EPERM
                      ? " (this kernel refuses map iterator programs to this process)"
                      : " (map iterators need 5.9 and BTF)");
        unload();
        return;
    }
    const DataplaneMapFds& fds = maps.fds();
    const std::array<std::pair<bpf_program*, int>, 4> progs{{
        {skel_->progs.nlb_scan_opening4, fds.conns4},
        {skel_->progs.nlb_scan_established4, fds.est4},
        {skel_->progs.nlb_scan_opening6, fds.conns6},
        {skel_->progs.nlb_scan_established6, fds.est6},
    }};
    for (std::size_t i = 0; i < progs.size(); ++i) {
        bpf_iter_link_info info{};
        info.map.map_fd = static_cast<__u32>(progs[i].second);
        LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &info, .link_info_len = sizeof(info));
        links_[i] = bpf_program__attach_iter(progs[i].first, &opts);
        if (!links_[i]) {
            error_ =
                std::string("attach ") + bpf_program__name(progs[i].first) + ": " + errstr(errno);
            unload();
            return;
        }
    }
}

ConnScanner::~ConnScanner() {
    unload();
}

void ConnScanner::unload() {
    for (bpf_link*& link : links_) {
        bpf_link__destroy(link); // takes nullptr
        link = nullptr;
    }
    conn_scan_bpf__destroy(skel_);
    skel_ = nullptr;
}

ConnScan ConnScanner::scan(std::uint64_t now_ns, bool age_opening) {
    if (skel_) {
        nlb_conn_scan& g = skel_->bss->nlb_conn_scan;
        std::memset(&g, 0, sizeof(g));
        g.now_ns = now_ns;
        g.age_opening = age_opening;
        ConnScan out;
        if (scan_in_kernel(out, now_ns, age_opening))
            return out;
        unload(); // error_ says why; from now on this scanner copies
    }
    return scan_by_copy(maps_, now_ns, age_opening);
}

bool ConnScanner::scan_in_kernel(ConnScan& out, std::uint64_t now_ns, bool age_opening) {
    // Opening before established, as scan_pair reads them, and for the same reason.
    const DataplaneMapFds& fds = maps_.fds();
    const std::array<std::pair<int, std::size_t>, 4> tables{{
        {fds.conns4, sizeof(nlb_conn_key4)},
        {fds.est4, sizeof(nlb_conn_key4)},
        {fds.conns6, sizeof(nlb_conn_key6)},
        {fds.est6, sizeof(nlb_conn_key6)},
    }};
    for (std::size_t i = 0; i < tables.size(); ++i) {
        const bool opening = i % 2 == 0;
        auto over = [&](const nlb_conn& c) {
            return opening ? opening_over(c, now_ns, age_opening) : established_over(c, now_ns);
        };
        if (!walk(links_[i], tables[i].first, tables[i].second, over, error_))
            return false;
    }
    const nlb_conn_scan& g = skel_->bss->nlb_conn_scan;
    for (std::size_t rule = 0; rule < NLB_RULE_SLOTS; ++rule) {
        out.live_by_rule[rule] = g.live_by_rule[rule];
        for (std::size_t word = 0; word < NLB_BUCKETS / 64; ++word)
            for (std::uint64_t bits = g.live_buckets[rule][word]; bits; bits &= bits - 1)
                out.live_buckets[rule].set(word * 64 + std::size_t(__builtin_ctzll(bits)));
    }
    out.live = g.live;
    out.opening = g.opening;
    out.established = g.established;
    out.closing = g.closing;
    out.expired = g.expired;
    out.opening_expired = g.opening_expired;
    return true;
}

std::uint64_t end_orphans(const DataplaneMaps& maps, const std::vector<nlb_tuple>& sockets,
                          std::uint64_t listed_at_ns, std::uint64_t now_ns,
                          const std::function<std::vector<nlb_tuple>()>& list_again) {
    const auto key_sets = [](const std::vector<nlb_tuple>& listed) {
        std::pair<std::unordered_set<std::string>, std::unordered_set<std::string>> sets;
        for (const auto& t : listed)
            (t.family == NLB_FAMILY_V4 ? sets.first.insert(bytes(key4(t)))
                                       : sets.second.insert(bytes(key6(t))));
        return sets;
    };
    const auto [v4, v6] = key_sets(sockets);
    const auto orphans4 = find_orphans<nlb_conn_key4>(maps.fds().est4, v4, listed_at_ns);
    const auto orphans6 = find_orphans<nlb_conn_key6>(maps.fds().est6, v6, listed_at_ns);
    if (orphans4.empty() && orphans6.empty())
        return 0;
    // The kernel's dump resumes a hash chain by position between two reads, so a socket
    // that closed earlier in the chain meanwhile makes it skip a live one: a record is
    // ended only if a second listing misses its socket too. Whatever it lists is spared.
    const auto [again4, again6] = key_sets(list_again());
    return end_orphans_in<nlb_conn_key4>(maps.fds().est4, orphans4, again4, now_ns) +
           end_orphans_in<nlb_conn_key6>(maps.fds().est6, orphans6, again6, now_ns);
}

} // namespace nlb
