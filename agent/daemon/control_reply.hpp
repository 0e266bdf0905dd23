// The control socket's answer objects ({"ok": true, "result": ...} or {"ok": false, "error":
// ...}) and the member lists in them, shared by the agent's request and status code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlb/limits.h>
#include <nlohmann/json.hpp>

namespace nlb {

inline nlohmann::json ok(nlohmann::json result = nlohmann::json::object()) {
    return {{"ok", true}, {"result", std::move(result)}};
}

inline nlohmann::json error(const std::string& message) {
    return {{"ok", false}, {"error", message}};
}

// Priorities of the hosts in a bit set (bit p-1 = priority p), ascending.
inline std::vector<int> members_of(std::uint64_t bits) {
    std::vector<int> out;
    for (int p = 1; p <= NLB_MAX_HOSTS; ++p)
        if (bits & (std::uint64_t{1} << (p - 1)))
            out.push_back(p);
    return out;
}

} // namespace nlb
