// ConvergenceEngine, the size of its heartbeats: what fits the MTUs of this host and of the
// peers it hears (docs/convergence.md, "Frame size"). A frame longer than the receiver's MTU
// is dropped before any program sees it, so a host with a smaller MTU than its peers hears
// only their short frames: those without a long dirty list. It counted them dead whenever a
// hand-over made their lists long, served alone and drew its peers into yielding to it.
#include <algorithm>

#include "convergence_engine.hpp"
#include "engine_util.hpp"

namespace nlb {

FrameBudget ConvergenceEngine::frame_budget(Millis now_ms) const {
    const std::int64_t now = now_ms.count();
    FrameBudget b;
    if (mtu_ < kHeartbeatMaxSize)
        b = {mtu_, me_, mtu_};
    else if (mtu_ > kHeartbeatMaxSize)
        // Jumbo frames here: a peer that says nothing may be at 1,500, and this host's copies
        // to it leave whole (below, a said MTU below this host's).
        b = {kHeartbeatMaxSize - kSecondPathOverhead, 0, kHeartbeatMaxSize};
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        const Peer& peer = peers_.peer(p);
        if (p == me_ || peer.heard_nonce == 0 || peer.heard_mtu == 0 ||
            now - peer.heard_ms() > tolerance_ms())
            continue;
        // Bounded, whatever the frame says: no peer sizes this host's frames below what a
        // map chunk needs anyway (the agent attaches to no smaller MTU).
        const std::size_t m = std::max<std::size_t>(peer.heard_mtu, kMinMtu);
        // A second-path copy longer than this host's MTU leaves in fragments that fit this
        // host's MTU, and one shorter whole: either way no piece longer than the peer takes
        // when its MTU is this host's or more; below, the copy must fit it whole.
        const std::size_t limit = m >= mtu_ ? m : m - kSecondPathOverhead;
        if (limit < b.bytes)
            b = {limit, p, m};
    }
    return b;
}

void ConvergenceEngine::note_frame_budget(std::int64_t now, const FrameBudget& budget,
                                          std::size_t bytes) {
    if (budget.bytes != budget_said_) {
        budget_said_ = budget.bytes;
        oversize_said_ = false;
        const std::string size =
            "heartbeats sized to at most " + std::to_string(budget.bytes) + " bytes";
        if (budget.by == 0 && budget.bytes == kHeartbeatMaxSize)
            event(now, EventKind::frame_budget, me_, size + " again (every MTU 1500 or more)");
        else if (budget.by == 0)
            event(now, EventKind::frame_budget, me_,
                  size + ": this host's interface MTU is " + std::to_string(mtu_) +
                      " (jumbo frames), and a peer that says nothing of its MTU may be at 1500");
        else if (budget.by == me_)
            event(now, EventKind::frame_budget, me_,
                  size + ": this host's interface MTU is " + std::to_string(budget.mtu));
        else
            event(now, EventKind::frame_budget, budget.by,
                  size + ": host " + std::to_string(budget.by) + "'s interface MTU is " +
                      std::to_string(budget.mtu) + ", below this host's " + std::to_string(mtu_) +
                      " (mixed MTUs on one segment: set the same MTU on every host)");
    }
    if (bytes <= budget.bytes)
        return;
    ++counters_.oversized;
    oversized_at_ = now;
    oversized_bytes_ = bytes;
    if (oversize_said_)
        return;
    oversize_said_ = true;
    event(now, EventKind::frame_oversized, budget.by ? budget.by : me_,
          "a heartbeat of " + std::to_string(bytes) + " bytes does not fit the " +
              std::to_string(budget.bytes) + " the MTU allows" +
              (budget.by && budget.by != me_ ? " (host " + std::to_string(budget.by) + "'s)" : "") +
              ": it may not arrive; raise the MTU (this cluster's rules and hosts need " +
              std::to_string(bytes) + " bytes)");
}

std::string ConvergenceEngine::frame_problem(std::int64_t now) const {
    if (now - oversized_at_ <= tolerance_ms())
        return "heartbeats of " + std::to_string(oversized_bytes_) + " bytes do not fit the " +
               std::to_string(budget_said_) + " bytes the MTU allows: raise the MTU";
    const FrameBudget b = frame_budget(Millis(now));
    if (b.by != 0 && b.by != me_)
        return "host " + std::to_string(b.by) + "'s interface MTU is " + std::to_string(b.mtu) +
               ", below this host's " + std::to_string(mtu_) + ": heartbeats cut to " +
               std::to_string(b.bytes) + " bytes (set the same MTU on every host)";
    return "";
}

} // namespace nlb
