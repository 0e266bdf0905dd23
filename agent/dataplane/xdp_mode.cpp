#include "xdp_mode.hpp"

namespace nlb {

namespace {

// A veth's frames are socket buffers that eth_type_trans classified when the peer sent them:
// a frame to the cluster MAC is marked PACKET_OTHERHOST before the native hook runs, and the
// mark outlives the program's rewrite of the destination to the host's MAC, so the stack drops
// every accepted frame (issue 11: all 1,000 TCP connections timed out). Generic XDP classifies
// a frame again when the program changed its destination. A veth frame is a socket buffer in
// either mode, so generic costs no allocation that native would save.
constexpr const char* kVethReason = "veth: native XDP runs after the veth's packet-type decision";

std::string driver_name(const std::string& driver) {
    return driver.empty() ? "the driver" : "driver " + driver;
}

} // namespace

XdpChoice choose_xdp_mode(XdpMode requested, const std::string& driver) {
    switch (requested) {
    case XdpMode::native:
        return {false, false, "--xdp-mode native"};
    case XdpMode::generic:
        return {true, false, "--xdp-mode generic"};
    case XdpMode::automatic:
        break;
    }
    if (driver == "veth")
        return {true, false, kVethReason};
    return {false, true, driver_name(driver) + " runs XDP before the stack"};
}

std::string generic_fallback_reason(const std::string& driver, const std::string& error) {
    return driver_name(driver) + " has no native XDP (" + error + ")";
}

const char* to_string(XdpMode mode) {
    switch (mode) {
    case XdpMode::automatic:
        return "auto";
    case XdpMode::native:
        return "native";
    case XdpMode::generic:
        return "generic";
    }
    return "?";
}

} // namespace nlb
