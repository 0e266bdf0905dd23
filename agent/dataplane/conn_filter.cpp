#include "conn_filter.hpp"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <system_error>

#include "dataplane_maps.hpp"
#include "errstr.hpp"
#include "program_barrier.hpp"
#include "table_scan.hpp"

namespace nlb {

namespace {

[[noreturn]] void fail(const std::string& what, int err) {
    throw std::system_error(err, std::generic_category(), "connection filter: " + what);
}

static_assert(sizeof(nlb_filter_header) == sizeof(nlb_filter_block));

// The dataplane sets bits with atomic ORs while this side reads and sets them.
void atomic_or(__u64& word, __u64 bits) {
    std::atomic_ref<__u64>(word).fetch_or(bits, std::memory_order_relaxed);
}

__u64 load(__u64& word) { return std::atomic_ref<__u64>(word).load(std::memory_order_relaxed); }

} // namespace

std::uint32_t ConnFilter::entries_for(std::uint64_t opening, std::uint64_t established) {
    return 1 + 4 * nlb_filter_blocks_per_half(opening + established);
}

ConnFilter::ConnFilter(int fd, std::uint32_t entries) : entries_(entries) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len))
        fail("read the map's description", errno);
    if (info.value_size != sizeof(nlb_filter_block) || info.max_entries != entries ||
        entries < 5)
        fail("map of " + std::to_string(info.max_entries) + " blocks of " +
                 std::to_string(info.value_size) + " bytes, expected " +
                 std::to_string(entries) + " of " + std::to_string(sizeof(nlb_filter_block)),
             EINVAL);
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    bytes_ = (std::size_t{entries} * sizeof(nlb_filter_block) + page - 1) / page * page;
    void* mem = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED)
        fail("mmap", errno);
    base_ = static_cast<nlb_filter_block*>(mem);
    nlb_filter_header* h = header();
    if (!h->blocks_per_half) {
        // The largest power of two whose four halves fit: the dataplane and this side index
        // alike, and the mask keeps every index inside the map.
        h->blocks_per_half = std::bit_floor((entries - 1) / 4);
        std::uint32_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
            seed = static_cast<std::uint32_t>(
                std::chrono::steady_clock::now().time_since_epoch().count());
        h->seed = seed;
    }
}

void ConnFilter::validate_new() {
    std::atomic_ref<__u32>(header()->valid).store(1, std::memory_order_release);
}

ConnFilter::~ConnFilter() {
    if (base_)
        munmap(base_, bytes_);
}

void ConnFilter::add(std::uint8_t family, std::uint32_t half, std::uint32_t hash) {
    const nlb_filter_header* h = header();
    nlb_filter_block* b = block(nlb_filter_index(hash, family, half, h->blocks_per_half));
    atomic_or(b->word[nlb_filter_word(hash)], nlb_filter_mask(hash));
}

bool ConnFilter::holds(std::uint8_t family, std::uint32_t hash) const {
    nlb_filter_header* h = header();
    nlb_filter_block* b = block(nlb_filter_index(
        hash, family, std::atomic_ref<__u32>(h->active).load(std::memory_order_acquire),
        h->blocks_per_half));
    const __u64 mask = nlb_filter_mask(hash);
    return (load(b->word[nlb_filter_word(hash)]) & mask) == mask;
}

void ConnFilter::record(const nlb_conn_key4& k) {
    for (std::uint32_t half = 0; half < 2; ++half)
        add(NLB_FAMILY_V4, half, nlb_filter_hash4(&k, header()->seed));
}

void ConnFilter::record(const nlb_conn_key6& k) {
    for (std::uint32_t half = 0; half < 2; ++half)
        add(NLB_FAMILY_V6, half, nlb_filter_hash6(&k, header()->seed));
}

bool ConnFilter::may_hold(const nlb_conn_key4& k) const {
    return !valid() || holds(NLB_FAMILY_V4, nlb_filter_hash4(&k, header()->seed));
}

bool ConnFilter::may_hold(const nlb_conn_key6& k) const {
    return !valid() || holds(NLB_FAMILY_V6, nlb_filter_hash6(&k, header()->seed));
}

bool ConnFilter::valid() const {
    return std::atomic_ref<__u32>(header()->valid).load(std::memory_order_acquire) != 0;
}

bool ConnFilter::holds_nothing(std::uint8_t family) const {
    if (!valid())
        return false;
    nlb_filter_header* h = header();
    // A rebuild that switched away from the half being read may clear it in the next one: an
    // answer read across a switch proves nothing.
    const __u64 rebuilds = std::atomic_ref<__u64>(h->rebuilds).load(std::memory_order_acquire);
    nlb_filter_block* first = block(nlb_filter_index(
        0, family, std::atomic_ref<__u32>(h->active).load(std::memory_order_acquire),
        h->blocks_per_half));
    for (std::uint32_t i = 0; i < h->blocks_per_half; ++i)
        for (__u64& w : first[i].word)
            if (load(w))
                return false;
    // The words' loads may not move after the second look at the count (a seqlock's read).
    std::atomic_thread_fence(std::memory_order_acquire);
    return std::atomic_ref<__u64>(h->rebuilds).load(std::memory_order_acquire) == rebuilds;
}

double ConnFilter::fill() const {
    const nlb_filter_header* h = header();
    std::uint64_t most = 0;
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        nlb_filter_block* first =
            block(nlb_filter_index(0, family, h->active, h->blocks_per_half));
        std::uint64_t set = 0;
        for (std::uint32_t i = 0; i < h->blocks_per_half; ++i)
            for (__u64& w : first[i].word)
                set += static_cast<std::uint64_t>(std::popcount(load(w)));
        most = std::max(most, set);
    }
    return static_cast<double>(most) /
           (static_cast<double>(h->blocks_per_half) * NLB_FILTER_BLOCK_BITS);
}

FilterRebuild ConnFilter::rebuild(const DataplaneMaps& maps) {
    nlb_filter_header* h = header();
    const std::uint32_t standby = h->active ^ 1;
    FilterRebuild r;
    // A run that read the active half before the last switch may still be reading the half
    // about to be cleared (a valid filter over a cleared half says "absent" of everything).
    r.waited = wait_out_programs();
    // Word by word, atomically: the dataplane ORs into these words meanwhile. A key it adds
    // before the clear and records after gets its bits again once recorded (nlb_conn_insert
    // adds on both sides of the insert), so the walk need not find it.
    for (std::uint8_t family : {NLB_FAMILY_V4, NLB_FAMILY_V6}) {
        nlb_filter_block* first = block(nlb_filter_index(0, family, standby, h->blocks_per_half));
        for (std::uint32_t i = 0; i < h->blocks_per_half; ++i)
            for (__u64& w : first[i].word)
                std::atomic_ref<__u64>(w).store(0, std::memory_order_relaxed);
    }
    const DataplaneMapFds& fds = maps.fds();
    auto add4 = [&](const nlb_conn_key4& k, const nlb_conn&) {
        add(NLB_FAMILY_V4, standby, nlb_filter_hash4(&k, h->seed));
        ++r.keys;
        return false;
    };
    auto add6 = [&](const nlb_conn_key6& k, const nlb_conn&) {
        add(NLB_FAMILY_V6, standby, nlb_filter_hash6(&k, h->seed));
        ++r.keys;
        return false;
    };
    // Opening before established, as the scans read them: a record the socket program moves
    // from one to the other during the walk is then seen in one of them (and its key is
    // added again as it moves).
    const bool complete = scan_table<nlb_conn_key4>(fds.conns4, add4) &&
                          scan_table<nlb_conn_key4>(fds.est4, add4) &&
                          scan_table<nlb_conn_key6>(fds.conns6, add6) &&
                          scan_table<nlb_conn_key6>(fds.est6, add6);
    if (!complete) { // the active half is as complete as it was: it stays
        const int err = errno;
        fail("read the connection tables: " + errstr(err), err);
    }
    // Both halves are complete from here: the standby one from the walk and the dataplane's
    // own additions, the active one as it always was. Switching needs no order beyond the
    // stores to the standby half coming first.
    std::atomic_ref<__u32>(h->active).store(standby, std::memory_order_release);
    std::atomic_ref<__u32>(h->valid).store(1, std::memory_order_release);
    std::atomic_ref<__u64>(h->rebuilds).fetch_add(1, std::memory_order_acq_rel);
    return r;
}

} // namespace nlb
