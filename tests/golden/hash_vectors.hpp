// Golden vectors of the packet hash: fixed inputs and the outputs every version of nlb must
// compute, written out as numbers rather than computed. Every host of a cluster decides alone
// which packets are its own, so a host whose hash differs in one bit from the others' accepts
// packets nobody else drops and drops packets nobody else takes: a changed mixer in a new
// version would split every cluster that is upgraded one host at a time, and only a test with
// fixed numbers notices. Both the C++ function (tests/dataplane/test_hash_vectors.cpp) and the
// compiled XDP program (tests/bpf/test_agreement.cpp, through BPF_PROG_TEST_RUN) are held to
// this one table.
//
// The vectors under NLB_FLOW_SEED were computed by nlb_flow_bucket as it was before the seed
// became a parameter: unkeyed clusters keep their mapping. Changing any number here changes
// the mapping of clusters in the field; that is a wire-level break, never a test fix.
#pragma once

#include <cstdint>

#include <nlb/maps.h>

namespace nlb::golden {

struct FlowVector {
    std::uint8_t family; // NLB_FAMILY_V4 / V6
    const char* source;  // the packet's source address
    std::uint16_t sport; // source port, host byte order
    std::uint8_t affinity;
    std::uint32_t seed;
    std::uint16_t bucket; // nlb_flow_bucket's answer
};

// Three IPv4 and three IPv6 sources, each under every affinity, under
// the fixed seed and two others.
// clang-format off: one vector a line
inline constexpr FlowVector kFlowVectors[] = {
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_NONE, 0x6e6c6231u, 1418},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_SINGLE, 0x6e6c6231u, 2752},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_NETWORK, 0x6e6c6231u, 3016},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_NONE, 0x6e6c6231u, 3295},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_SINGLE, 0x6e6c6231u, 2746},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_NETWORK, 0x6e6c6231u, 1399},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_NONE, 0x6e6c6231u, 3690},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_SINGLE, 0x6e6c6231u, 3727},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_NETWORK, 0x6e6c6231u, 2760},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_NONE, 0x6e6c6231u, 1570},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_SINGLE, 0x6e6c6231u, 3881},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_NETWORK, 0x6e6c6231u, 3080},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_NONE, 0x6e6c6231u, 2494},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_SINGLE, 0x6e6c6231u, 1220},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_NETWORK, 0x6e6c6231u, 1932},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_NONE, 0x6e6c6231u, 1047},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_SINGLE, 0x6e6c6231u, 1047},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_NETWORK, 0x6e6c6231u, 1278},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_NONE, 0x00000001u, 2388},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_SINGLE, 0x00000001u, 544},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_NETWORK, 0x00000001u, 2138},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_NONE, 0x00000001u, 285},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_SINGLE, 0x00000001u, 122},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_NETWORK, 0x00000001u, 2730},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_NONE, 0x00000001u, 1321},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_SINGLE, 0x00000001u, 3800},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_NETWORK, 0x00000001u, 2545},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_NONE, 0x00000001u, 1778},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_SINGLE, 0x00000001u, 3435},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_NETWORK, 0x00000001u, 1385},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_NONE, 0x00000001u, 1417},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_SINGLE, 0x00000001u, 3913},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_NETWORK, 0x00000001u, 3038},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_NONE, 0x00000001u, 1632},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_SINGLE, 0x00000001u, 1632},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_NETWORK, 0x00000001u, 3315},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_NONE, 0xdeadbeefu, 1491},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_SINGLE, 0xdeadbeefu, 659},
    {NLB_FAMILY_V4, "198.51.100.7", 49152, NLB_AFFINITY_NETWORK, 0xdeadbeefu, 422},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_NONE, 0xdeadbeefu, 3790},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_SINGLE, 0xdeadbeefu, 3112},
    {NLB_FAMILY_V4, "203.0.113.200", 443, NLB_AFFINITY_NETWORK, 0xdeadbeefu, 99},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_NONE, 0xdeadbeefu, 2465},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_SINGLE, 0xdeadbeefu, 2832},
    {NLB_FAMILY_V4, "10.1.2.3", 65535, NLB_AFFINITY_NETWORK, 0xdeadbeefu, 2217},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_NONE, 0xdeadbeefu, 1353},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_SINGLE, 0xdeadbeefu, 1985},
    {NLB_FAMILY_V6, "2001:db8::1", 1024, NLB_AFFINITY_NETWORK, 0xdeadbeefu, 3278},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_NONE, 0xdeadbeefu, 17},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_SINGLE, 0xdeadbeefu, 1094},
    {NLB_FAMILY_V6, "2001:db8:85a3::8a2e:370:7334", 50000, NLB_AFFINITY_NETWORK, 0xdeadbeefu, 1796},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_NONE, 0xdeadbeefu, 1455},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_SINGLE, 0xdeadbeefu, 1455},
    {NLB_FAMILY_V6, "fd00:1234:5678:9abc:def0:1:2:3", 0, NLB_AFFINITY_NETWORK, 0xdeadbeefu, 1694},
};
// clang-format on

struct VipSlotVector {
    std::uint8_t family;
    const char* address;
    std::uint32_t seed;
    std::uint32_t slot; // nlb_vip_slot's answer
};

inline constexpr VipSlotVector kVipSlotVectors[] = {
    {NLB_FAMILY_V4, "192.0.2.100", 0x9e3779b1u, 192},
    {NLB_FAMILY_V4, "192.0.2.101", 0x9e3779b1u, 113},
    {NLB_FAMILY_V4, "10.0.0.1", 0x12345677u, 45},
    {NLB_FAMILY_V6, "2001:db8::100", 0x9e3779b1u, 234},
    {NLB_FAMILY_V6, "2001:db8::101", 0x12345677u, 135},
    {NLB_FAMILY_V4, "198.51.100.200", 0x00000001u, 200},
    {NLB_FAMILY_V6, "2001:db8:1:2:3:4:5:6", 0xfffffffeu, 71},
};

} // namespace nlb::golden
