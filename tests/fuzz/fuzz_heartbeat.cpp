// libFuzzer target: the heartbeat and map-chunk decoders, the map decoder and reassembly, and
// a keyed and an unkeyed engine fed the input as a received frame. Nothing may crash, hang or
// grow without bound; anything decoded must re-encode and decode to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "convergence_engine.hpp"
#include "heartbeat_codec.hpp"
#include "map_transfer.hpp"

namespace {

nlb::EngineConfig config(bool keyed) {
    nlb::EngineConfig c;
    c.cluster.ip = 0xc0000264;
    c.host.priority = 1;
    c.rules.push_back({});
    if (keyed)
        c.cluster.key.assign(32, 0x5a);
    return c;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> frame(data, size);
    const auto r = nlb::decode_heartbeat(frame);
    if (r.heartbeat) {
        auto hb = *r.heartbeat;
        hb.flags &= nlb::Heartbeat::kFlagAuthenticated | nlb::Heartbeat::kFlagScoreFrozen;
        const auto again = nlb::decode_heartbeat(nlb::encode_heartbeat(hb));
        if (!again.heartbeat || again.heartbeat->nonce != hb.nonce ||
            again.heartbeat->rules != hb.rules || again.heartbeat->dirty.size() != hb.dirty.size())
            std::abort();
    }
    const auto c = nlb::decode_map_chunk(frame);
    if (c.chunk) {
        auto chunk = *c.chunk;
        chunk.flags &= nlb::Heartbeat::kFlagAuthenticated;
        const auto again = nlb::decode_map_chunk(nlb::encode_map_chunk(chunk));
        if (!again.chunk || !(*again.chunk == chunk))
            std::abort();
        // Reassembly: one buffer, bounded, whatever the chunks say.
        static nlb::MapAssembly assembly;
        if (assembly.add(chunk) == nlb::MapAssembly::Result::complete)
            (void)assembly.take();
    }
    // The input as an encoded map: what decodes must re-encode to a map that decodes equal.
    if (const auto map = nlb::decode_map(frame)) {
        const auto again = nlb::decode_map(nlb::encode_map(*map));
        if (!again || !(*again == *map))
            std::abort();
    }
    static nlb::ConvergenceEngine open(config(false), 1, nlb::Millis{0});
    static nlb::ConvergenceEngine keyed(config(true), 2, nlb::Millis{0});
    static std::int64_t now = 0;
    now += 10;
    for (auto* e : {&open, &keyed}) {
        e->on_heartbeat(frame, nlb::Millis{now});
        e->on_tick(nlb::Millis{now});
        (void)e->take_decision();
    }
    // Past admission: the keyed engine also gets the input correctly signed (a peer with the
    // key: only the sections can be hostile then), raw and, when it decodes, as a heartbeat
    // that proves contact (it echoes this engine's nonce), by both paths.
    static const nlb::HeartbeatAuth auth(config(true).cluster.key);
    static nlb::ConvergenceEngine signed_engine(config(true), 3, nlb::Millis{0});
    std::vector<std::uint8_t> raw(data, data + size);
    if (raw.size() >= 12 + 32) {
        raw[11] |= 0x01; // kFlagAuthenticated
        const std::size_t total = (std::size_t{raw[8]} << 8) | raw[9];
        if (total >= 32 && total <= raw.size()) {
            std::vector<std::uint8_t> body(raw.begin(), raw.begin() + static_cast<long>(total));
            auth.sign(body);
            std::copy(body.begin(), body.end(), raw.begin());
        }
        signed_engine.on_heartbeat(raw, nlb::Millis{now});
    }
    if (r.heartbeat && r.heartbeat->priority != 1) {
        auto hb = *r.heartbeat;
        hb.flags |= nlb::Heartbeat::kFlagAuthenticated;
        hb.has_contact = true;
        if (hb.echoes.size() >= NLB_MAX_HOSTS)
            hb.echoes.pop_back();
        if (!hb.echo_of(1, 3))
            hb.echoes.push_back({1, nlb::Heartbeat::kPathSegment, 3});
        auto f = nlb::encode_heartbeat(hb);
        auth.sign(f);
        signed_engine.on_heartbeat(f, nlb::Millis{now}, nlb::Path::segment);
        signed_engine.on_heartbeat(f, nlb::Millis{now}, nlb::Path::contact);
    }
    signed_engine.on_tick(nlb::Millis{now});
    (void)signed_engine.take_decision();
    return 0;
}
