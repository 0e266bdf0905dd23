#include "probe_panic.hpp"

#include <algorithm>

namespace nlb {

std::uint32_t resolve_panic(std::span<MemberParams> members, std::span<const RuleMode> modes) {
    if (members.empty())
        return 0;
    std::uint32_t percent = 0;
    for (const auto& m : members) {
        if (!m.health)
            return 0;
        percent = std::max<std::uint32_t>(percent, m.panic_percent);
    }
    std::uint32_t panic = 0;
    const std::size_t rules = std::min<std::size_t>(modes.size(), NLB_MAX_RULES);
    for (std::size_t r = 0; r < rules; ++r) {
        if (modes[r] == RuleMode::disabled)
            continue;
        const std::uint32_t bit = std::uint32_t{1} << r;
        std::uint32_t candidates = 0, healthy = 0;
        for (const auto& m : members) {
            const bool held = (m.probe_down & bit) != 0;
            if (m.control[r] != RuleControl::enabled && !held)
                continue; // the operator's drain or disable wins
            if (modes[r] == RuleMode::multiple &&
                effective_weight(m.rules[r].load_weight, RuleControl::enabled) == 0)
                continue; // would own nothing healthy or not
            ++candidates;
            healthy += held ? 0 : 1;
        }
        if (candidates == healthy)
            continue; // no probe holds anyone down: nothing to decide
        if (healthy != 0 && std::uint64_t{healthy} * 100 >= std::uint64_t{percent} * candidates)
            continue;
        panic |= bit;
        for (auto& m : members)
            if (m.probe_down & bit)
                m.control[r] = RuleControl::enabled;
    }
    return panic;
}

} // namespace nlb
