// ConvergenceEngine, agreement: when a convergence may end, the base map every member computes
// the next map from, and its transfer to members that lack it.
#include "convergence_engine.hpp"

#include <algorithm>

#include "digest.hpp"
#include "engine_util.hpp"
#include "heartbeat_codec.hpp"

namespace nlb {

using detail::host_list;
using detail::in_view_state;
using detail::lowest;
using detail::serving_state;

bool ConvergenceEngine::agreement(std::int64_t now) const {
    if (awaiting_contact_)
        return false;
    // Link down (on_link): what this host hears is nothing, and no epoch is formed on it.
    if (link_down_)
        return false;
    if (view_ == host_bit(me_)) {
        if (now - started_at_ < start_wait())
            return false; // alone: first give everyone a chance to be heard
        // A host that never had a peer prove contact does not serve alone while it hears a
        // peer talking that has not proven it yet (a restart beside a running cluster, the
        // peers still echoing its earlier boot). Only a fresh host: a survivor must take over
        // whatever a one-way peer sends.
        if (!had_peer_)
            for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
                const auto& peer = peers_.peer(p);
                if (p != me_ && !peer.alive && peer.heard_nonce != 0 &&
                    now - peer.heard_ms() <= period())
                    return false;
            }
    }
    // A host back from a stall read what queued up meanwhile at once: a member's last frame
    // there may show a view that member has left since (it dropped this host, silent so
    // long). It agrees only on frames that came after it resumed.
    if (recovering_ && !members_heard_since(started_at_))
        return false;
    // Nor does a group of young hosts (agents restarted together, a cluster's cold start):
    // none of them may have heard yet a live member that is silent for now (paused for less
    // than its watchdog, so still serving) or whose next frame is still a period away. Like
    // a host alone, they wait until one of them has run for a tolerance; a group with an
    // older member has heard every live host, and knows its claim. Frames without the flag
    // are an older version's: not young.
    bool all_young = young(now);
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == me_ || !(view_ & host_bit(p)))
            continue;
        const auto& hb = peers_.peer(p).heartbeat;
        if (hb.view != view_ || hb.view_digest != view_digest_)
            return false;
        all_young = all_young && (hb.flags & Heartbeat::kFlagYoung);
        if (chosen_ != 0 && hb.base_digest != chosen_)
            return false;
    }
    if (all_young)
        return false;
    return chosen_ == 0 || base_digest_ == chosen_;
}

bool ConvergenceEngine::members_heard_since(std::int64_t since) const {
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (p != me_ && (view_ & host_bit(p)) && peers_.peer(p).last_heard_ms < since)
            return false;
    return true;
}

void ConvergenceEngine::choose_base(std::uint64_t members) {
    // Highest generation (the newest map), then most holders, then the lowest holder: every
    // member that sees the same heartbeats picks the same, and the digest enters the epoch.
    // Holders count by digest (one map, one digest), with the highest generation reported.
    struct Candidate {
        std::uint64_t digest;
        std::uint32_t gen;
        int count;
    };
    std::vector<Candidate> seen; // in order of their lowest holder
    std::uint32_t max_gen = 0;
    bool give_up = false, legacy = false;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (!(members & host_bit(p)))
            continue;
        std::uint64_t digest = base_digest_;
        std::uint32_t gen = base_digest_ ? base_gen_ : 0;
        if (p == me_) {
            give_up = give_up || give_up_;
        } else {
            const auto& hb = peers_.peer(p).heartbeat;
            digest = hb.base_digest;
            gen = hb.base_generation;
            give_up = give_up || (hb.base_flags & Heartbeat::kBaseGiveUp);
            legacy = legacy || hb.version_minor == 0;
        }
        max_gen = std::max(max_gen, gen);
        if (digest == 0)
            continue;
        auto it = std::find_if(seen.begin(), seen.end(),
                               [&](const Candidate& c) { return c.digest == digest; });
        if (it == seen.end())
            seen.push_back({digest, gen, 1});
        else {
            it->gen = std::max(it->gen, gen);
            ++it->count;
        }
    }
    const Candidate* best = nullptr;
    for (const auto& c : seen) // ties keep the earlier, i.e. the lower holder
        if (!best || c.gen > best->gen || (c.gen == best->gen && c.count > best->count))
            best = &c;
    // The next map's generation is above every one reported, whichever base it comes from.
    next_gen_ = max_gen + 1;
    if (legacy) {
        // A 1.0 member knows no base and computes allocate() with 1.0's view digest: the
        // whole cluster does, until every member runs 1.1 (a rolling upgrade converges at
        // each step).
        chosen_ = 0;
        chosen_gen_ = 0;
    } else if (give_up || !best) {
        chosen_ = 0;
        chosen_gen_ = max_gen;
    } else {
        chosen_ = best->digest;
        chosen_gen_ = best->gen;
    }
}

std::shared_ptr<const ClusterMap> ConvergenceEngine::held_map(std::uint64_t digest) const {
    if (digest == 0)
        return nullptr;
    if (base_ && base_digest_ == digest)
        return base_;
    if (target_ && target_digest_ == digest)
        return target_;
    if (prev_ && prev_digest_ == digest)
        return prev_;
    if (candidate_ && candidate_digest_ == digest)
        return candidate_;
    return nullptr;
}

void ConvergenceEngine::set_base(std::int64_t now, std::shared_ptr<const ClusterMap> map,
                                 std::uint64_t digest, std::uint32_t generation) {
    base_ = std::move(map);
    base_digest_ = base_ ? digest : 0;
    base_gen_ = base_ ? generation : 0;
    base_encoded_ = base_ ? encode_map(*base_) : std::vector<std::uint8_t>{};
    chunk_cursor_ = 0;
    lacking_since_ = -1;
    ++params_generation_;
    send_soon(now);
}

void ConvergenceEngine::forget_maps(std::int64_t now) {
    if (base_)
        set_base(now, nullptr, 0, 0);
    target_valid_ = false;
    if (give_up_) {
        give_up_ = false;
        ++params_generation_;
    }
    assembly_.reset();
}

void ConvergenceEngine::follow_base(std::int64_t now) {
    if (chosen_ == 0 || base_digest_ == chosen_) {
        lacking_since_ = -1;
        return;
    }
    if (auto map = held_map(chosen_)) {
        set_base(now, std::move(map), chosen_, chosen_gen_);
        return;
    }
    // Waiting for a transfer. Bounded: after give_up_ms the cluster falls back to the
    // stateless allocation rather than stall (every member sees the flag in our heartbeat).
    if (!agreeing_ || !participating()) {
        lacking_since_ = -1;
        return;
    }
    if (lacking_since_ < 0) {
        lacking_since_ = now;
    } else if (!give_up_ && now - lacking_since_ > give_up_ms()) {
        give_up_ = true;
        ++params_generation_;
        ++counters_.map_fallbacks;
        event(now, EventKind::map_fallback, me_,
              "no copy of the cluster's map within " + std::to_string(give_up_ms()) +
                  " ms: falling back to the stateless allocation");
        send_soon(now);
    }
}

void ConvergenceEngine::on_map_chunk(std::span<const std::uint8_t> frame, std::int64_t now) {
    const auto decoded = decode_map_chunk(frame);
    if (!decoded.chunk) {
        count_undecodable(decoded.error);
        return;
    }
    const MapChunk& c = *decoded.chunk; // admitted by on_heartbeat
    if (!chunk_replay_.accept(c.priority, c.nonce, c.sequence)) {
        ++counters_.replayed;
        return;
    }
    const auto& peer = peers_.peer(c.priority);
    if (c.priority == me_ || !peer.alive || peer.heartbeat.nonce != c.nonce) {
        ++counters_.map_chunks_ignored;
        return;
    }
    ++counters_.map_chunks_received;
    if (chosen_ == 0 || c.map_digest != chosen_ || c.generation != chosen_gen_ ||
        base_digest_ == chosen_) {
        ++counters_.map_chunks_ignored;
        return;
    }
    switch (assembly_.add(c)) {
    case MapAssembly::Result::stored:
    case MapAssembly::Result::duplicate:
        return;
    case MapAssembly::Result::mismatch:
        ++counters_.map_rejected;
        return;
    case MapAssembly::Result::complete:
        break;
    }
    auto map = assembly_.take();
    if (!map) {
        ++counters_.map_rejected;
        return;
    }
    ++counters_.map_transfers;
    event(now, EventKind::map_received, c.priority,
          "base map received from host " + std::to_string(c.priority) + " (generation " +
              std::to_string(c.generation) + ")");
    set_base(now, std::make_shared<const ClusterMap>(std::move(*map)), c.map_digest, c.generation);
    evaluate(now);
}

bool ConvergenceEngine::member_lacks_base(const Heartbeat& hb) const {
    // A member lacks the base once it agrees that it is the cluster's (same view digest), or
    // when it has none and was not in our epoch (it just joined or restarted); otherwise its
    // report may just be older than the change (it has not taken its map as base yet).
    const bool newcomer = hb.base_digest == 0 && !(epoch_members_ & host_bit(hb.priority));
    return hb.base_digest != chosen_ && (hb.view_digest == view_digest_ || newcomer);
}

void ConvergenceEngine::send_chunks() {
    if (chosen_ == 0 || base_digest_ != chosen_ || base_encoded_.empty() || !participating())
        return;
    // The lowest holder among the members sends; only while a member lacks the base.
    bool lacking = false;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p) {
        if (p == me_ || !(view_ & host_bit(p)))
            continue;
        const auto& hb = peers_.peer(p).heartbeat;
        // A holder: it reports the base, or holds it as its current map (it will report it).
        if ((hb.base_digest == chosen_ || hb.map_digest == chosen_) && p < me_)
            return;
        lacking = lacking || member_lacks_base(hb);
    }
    if (!lacking)
        return;
    const auto count = chunk_count(base_encoded_.size());
    const std::size_t n = std::min(kChunksPerSend, count);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t index = chunk_cursor_++ % count;
        MapChunk c;
        c.flags = auth_.keyed() ? Heartbeat::kFlagAuthenticated : 0;
        c.cluster_ip = config_.cluster.ip;
        c.priority = me_;
        c.nonce = nonce_;
        c.sequence = ++chunk_sequence_;
        c.map_digest = base_digest_;
        c.generation = base_gen_;
        c.map_size = static_cast<std::uint32_t>(base_encoded_.size());
        c.index = static_cast<std::uint16_t>(index);
        c.count = static_cast<std::uint16_t>(count);
        const auto data = chunk_data(base_encoded_, index);
        c.data.assign(data.begin(), data.end());
        auto frame = encode_map_chunk(c);
        auth_.sign(frame);
        out_.frames.push_back(std::move(frame));
        ++counters_.map_chunks_sent;
    }
}

} // namespace nlb
