// Small helpers the ConvergenceEngine's files share (private to agent/engine).
#pragma once

#include <cstdint>
#include <string>

#include "heartbeat.hpp"
#include "membership.hpp"

namespace nlb::detail {

inline bool in_view_state(HostState s) {
    return s == HostState::converging || s == HostState::converged;
}

inline bool serving_state(HostState s) {
    return s == HostState::converged || s == HostState::draining;
}

inline std::uint8_t lowest(std::uint64_t bits) {
    return bits ? static_cast<std::uint8_t>(__builtin_ctzll(bits) + 1) : 0;
}

inline std::string host_list(std::uint64_t bits) {
    std::string s;
    for (std::uint8_t p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (bits & host_bit(p))
            s += (s.empty() ? "" : ",") + std::to_string(p);
    return "[" + s + "]";
}

} // namespace nlb::detail
