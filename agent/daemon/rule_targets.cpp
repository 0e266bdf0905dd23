// The port rules an enable / disable / drain request names: those that cover the port on that
// VIP (or on the cluster IP), for tcp and udp, or every rule (of that VIP).
#include "rule_targets.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace nlb {

using json = nlohmann::json;

std::vector<int> rule_targets(const DataplaneTables& tables, const json& request,
                              const std::string& verb) {
    auto fail = [&](const std::string& why) -> std::vector<int> {
        throw std::invalid_argument(verb + ": " + why);
    };
    if (!request.contains("port"))
        return fail("port missing");
    const json& port = request["port"];
    const bool all = port.is_string() && port.get<std::string>() == "all";
    if (!all && (!port.is_number_integer() || port.get<long>() < 0 || port.get<long>() > 65535))
        return fail("bad port " + port.dump() + " (0-65535 or all)");
    std::optional<std::size_t> vip;
    if (request.contains("vip")) {
        auto addr = request["vip"].is_string() ? IpAddress::parse(request["vip"].get<std::string>())
                                               : std::nullopt;
        const auto& vips = tables.vips();
        auto it = addr ? std::find(vips.begin(), vips.end(), *addr) : vips.end();
        if (it == vips.end())
            return fail(request["vip"].dump() + " is not a VIP of this cluster");
        vip = static_cast<std::size_t>(it - vips.begin());
    }
    if (all) {
        if (!vip)
            return {-1};
        // The rules of that VIP only: those for all VIPs serve the others too.
        std::vector<int> rules;
        for (std::size_t r = 0; r < tables.rules().size(); ++r)
            if (tables.rules()[r].vip == vip)
                rules.push_back(static_cast<int>(r));
        if (rules.empty())
            return fail("no port rule names VIP " + request["vip"].get<std::string>() +
                        " (the rules for all VIPs cover it)");
        return rules;
    }
    // The port's rule for each protocol: one rule for both, or a tcp and a udp one.
    auto p = static_cast<std::uint16_t>(port.get<long>());
    std::vector<int> rules;
    for (std::uint32_t proto : {NLB_PROTO_TCP, NLB_PROTO_UDP}) {
        const auto r = static_cast<int>(tables.rule_of(vip.value_or(0), proto, p));
        if (static_cast<std::size_t>(r) < tables.rules().size() &&
            std::find(rules.begin(), rules.end(), r) == rules.end())
            rules.push_back(r);
    }
    if (rules.empty())
        return fail("no port rule covers port " + std::to_string(p));
    return rules;
}

} // namespace nlb
