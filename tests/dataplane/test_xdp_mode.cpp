// Which XDP hook `--xdp-mode` resolves to on a driver, and the reason query shows (issue 11,
// defect 9: auto on a veth attached native and dropped every accepted frame).
#include <catch2/catch.hpp>

#include "xdp_mode.hpp"

using namespace nlb;

TEST_CASE("auto takes generic on a veth and says why") {
    XdpChoice c = choose_xdp_mode(XdpMode::automatic, "veth");
    CHECK(c.generic);
    CHECK_FALSE(c.fall_back);
    CHECK(c.reason == "veth: native XDP runs after the veth's packet-type decision");
}

TEST_CASE("auto takes native on a NIC and may fall back to generic") {
    for (const char* driver : {"mlx5_core", "virtio_net", ""}) {
        XdpChoice c = choose_xdp_mode(XdpMode::automatic, driver);
        CHECK_FALSE(c.generic);
        CHECK(c.fall_back);
    }
    CHECK(choose_xdp_mode(XdpMode::automatic, "ixgbe").reason ==
          "driver ixgbe runs XDP before the stack");
    CHECK(generic_fallback_reason("dummy", "Operation not supported") ==
          "driver dummy has no native XDP (Operation not supported)");
}

TEST_CASE("a forced mode is kept, on a veth too") {
    XdpChoice native = choose_xdp_mode(XdpMode::native, "veth");
    CHECK_FALSE(native.generic);
    CHECK_FALSE(native.fall_back);
    CHECK(native.reason == "--xdp-mode native");
    XdpChoice generic = choose_xdp_mode(XdpMode::generic, "mlx5_core");
    CHECK(generic.generic);
    CHECK(generic.reason == "--xdp-mode generic");
}
