// Which XDP hook the dataplane goes on, and why: the reason is what `nlbadm query` and the
// attach log line show, so an operator never has to guess why a host runs in generic mode.
#pragma once

#include <string>

namespace nlb {

// Native runs in the driver, before any socket buffer exists; generic runs on the socket
// buffer, after the driver built it. `automatic` picks what works on the interface's driver.
enum class XdpMode { automatic, native, generic };

struct XdpChoice {
    bool generic = false;
    // automatic only: when native XDP fails to attach, generic is tried before giving up
    bool fall_back = false;
    std::string reason;
};

// The first hook to try for `requested` on an interface whose driver is `driver` ("veth",
// "mlx5_core"; empty when unknown).
XdpChoice choose_xdp_mode(XdpMode requested, const std::string& driver);

// Why automatic mode ended in generic after native XDP failed with `error`.
std::string generic_fallback_reason(const std::string& driver, const std::string& error);

const char* to_string(XdpMode mode); // "auto", "native", "generic"

} // namespace nlb
