#include "packet_builder.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace nlb::test {

IpAddress ip(const std::string& text) {
    auto a = IpAddress::parse(text);
    if (!a)
        throw std::invalid_argument("bad address literal " + text);
    return *a;
}

std::uint16_t inet_checksum(const std::uint8_t* data, std::size_t len, std::uint32_t sum) {
    for (std::size_t i = 0; i + 1 < len; i += 2)
        sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (len & 1)
        sum += static_cast<std::uint32_t>(data[len - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

namespace {

void put16(Bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

void put32(Bytes& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v >> 16));
    put16(b, static_cast<std::uint16_t>(v));
}

void put_words(Bytes& b, const std::array<std::uint32_t, 4>& w, int n) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(w.data());
    b.insert(b.end(), p, p + 4 * n);
}

void ethernet(Bytes& b, const Mac& dst, const Mac& src, std::optional<std::uint16_t> vlan,
              std::uint16_t type) {
    b.insert(b.end(), dst.begin(), dst.end());
    b.insert(b.end(), src.begin(), src.end());
    if (vlan) {
        put16(b, 0x8100);
        put16(b, *vlan);
    }
    put16(b, type);
}

Bytes l4_header(const PacketSpec& s) {
    Bytes l4;
    if (s.proto == kTcp) {
        put16(l4, s.sport);
        put16(l4, s.dport);
        const bool syn = (s.tcp_flags & (kSyn | kAck)) == kSyn;
        put32(l4, s.seq.value_or(syn ? 1000 : 1001));
        put32(l4, 0); // ack
        l4.push_back(5 << 4);
        l4.push_back(s.tcp_flags);
        put16(l4, 65535); // window
        put16(l4, 0);     // checksum (the XDP program does not read it)
        put16(l4, 0);
    } else if (s.proto == kUdp) {
        put16(l4, s.sport);
        put16(l4, s.dport);
        put16(l4, static_cast<std::uint16_t>(8 + s.payload));
        put16(l4, 0);
    } else if (s.proto == kIcmp || s.proto == kIcmp6) {
        l4.push_back(s.icmp_type);
        l4.insert(l4.end(), {0, 0, 0, 0, 0, 0, 0});
        l4.insert(l4.end(), s.icmp_body.begin(), s.icmp_body.end());
    }
    return l4;
}

} // namespace

Bytes build(const PacketSpec& s) {
    Bytes transport = l4_header(s);
    transport.resize(transport.size() + s.payload, 0xab);
    bool later_fragment = s.fragment && s.frag_offset != 0;
    if (later_fragment)
        transport.assign(s.payload ? s.payload : 16, 0xcd); // no transport header

    Bytes b;
    if (s.src.family == NLB_FAMILY_V4) {
        ethernet(b, s.dst_mac, s.src_mac, s.vlan, 0x0800);
        std::size_t ip_start = b.size();
        std::size_t hlen = 20 + s.ipv4_options;
        b.push_back(static_cast<std::uint8_t>(0x40 | (hlen / 4)));
        b.push_back(0);
        put16(b, static_cast<std::uint16_t>(hlen + transport.size()));
        put16(b, static_cast<std::uint16_t>(s.frag_id));
        std::uint16_t frag = s.fragment ? static_cast<std::uint16_t>(
                                              (s.more_fragments ? 0x2000 : 0) | s.frag_offset)
                                        : 0;
        put16(b, frag);
        b.push_back(64);
        b.push_back(s.proto);
        put16(b, 0);
        put_words(b, s.src.words, 1);
        put_words(b, s.dst.words, 1);
        b.insert(b.end(), s.ipv4_options, 1); // NOP options
        std::uint16_t c = inet_checksum(&b[ip_start], hlen);
        b[ip_start + 10] = static_cast<std::uint8_t>(c >> 8);
        b[ip_start + 11] = static_cast<std::uint8_t>(c);
    } else {
        ethernet(b, s.dst_mac, s.src_mac, s.vlan, 0x86dd);
        Bytes ext;
        std::vector<std::uint8_t> chain = s.ipv6_ext;
        if (s.fragment)
            chain.push_back(44);
        for (std::size_t i = 0; i < chain.size(); ++i) {
            std::uint8_t next = i + 1 < chain.size() ? chain[i + 1] : s.proto;
            if (chain[i] == 44) {
                ext.push_back(next);
                ext.push_back(0);
                put16(ext, static_cast<std::uint16_t>(s.frag_offset << 3 |
                                                      (s.more_fragments ? 1 : 0)));
                put16(ext, static_cast<std::uint16_t>(s.frag_id >> 16));
                put16(ext, static_cast<std::uint16_t>(s.frag_id));
            } else if (chain[i] == 51) { // AH: length in 4-byte units minus 2
                ext.push_back(next);
                ext.push_back(1);
                ext.insert(ext.end(), 10, 0);
            } else { // hop-by-hop, routing, destination options: 8 bytes, PadN
                ext.push_back(next);
                ext.push_back(0);
                ext.insert(ext.end(), {1, 4, 0, 0, 0, 0});
            }
        }
        b.insert(b.end(), {0x60, 0, 0, 0});
        put16(b, static_cast<std::uint16_t>(ext.size() + transport.size()));
        b.push_back(chain.empty() ? s.proto : chain[0]);
        b.push_back(64);
        put_words(b, s.src.words, 4);
        put_words(b, s.dst.words, 4);
        b.insert(b.end(), ext.begin(), ext.end());
    }
    b.insert(b.end(), transport.begin(), transport.end());
    return b;
}

Bytes build_icmp_error(const PacketSpec& outer, const Bytes& quoted, std::uint8_t type) {
    PacketSpec s = outer;
    bool v4 = s.src.family == NLB_FAMILY_V4;
    s.proto = v4 ? kIcmp : kIcmp6;
    s.icmp_type = type;
    std::size_t l3 = quoted[12] == 0x81 ? 18 : 14;
    // IPv4: the header and 8 bytes (RFC 792); IPv6 quotes as much as fits 1280 bytes: here
    // the header, a fragment header if there is one, and 8 bytes.
    std::size_t quote_len = v4 ? ((quoted[l3] & 0x0f) * 4 + 8) : 56;
    s.icmp_body.assign(quoted.begin() + static_cast<long>(l3),
                       quoted.begin() + static_cast<long>(std::min(quoted.size(), l3 + quote_len)));
    return build(s);
}

Bytes build_arp_request(const Mac& sender_mac, const IpAddress& sender, const IpAddress& target,
                        std::optional<std::uint16_t> vlan) {
    Bytes b;
    ethernet(b, Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, sender_mac, vlan, 0x0806);
    put16(b, 1);
    put16(b, 0x0800);
    b.push_back(6);
    b.push_back(4);
    put16(b, 1);
    b.insert(b.end(), sender_mac.begin(), sender_mac.end());
    put_words(b, sender.words, 1);
    b.insert(b.end(), 6, 0);
    put_words(b, target.words, 1);
    b.resize(60, 0); // minimum Ethernet frame: the padding a real NIC delivers
    return b;
}

Bytes build_neighbor_solicitation(const Mac& sender_mac, const IpAddress& sender,
                                  const IpAddress& target, bool with_source_lladdr) {
    const auto* t = reinterpret_cast<const std::uint8_t*>(target.words.data());
    Mac dst{0x33, 0x33, 0xff, t[13], t[14], t[15]};
    Bytes b;
    ethernet(b, dst, sender_mac, std::nullopt, 0x86dd);
    Bytes icmp{135, 0, 0, 0, 0, 0, 0, 0};
    icmp.insert(icmp.end(), t, t + 16);
    if (with_source_lladdr) {
        icmp.push_back(1);
        icmp.push_back(1);
        icmp.insert(icmp.end(), sender_mac.begin(), sender_mac.end());
    }
    // solicited-node multicast address ff02::1:ffXX:XXXX
    std::array<std::uint8_t, 16> dst_ip{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff,
                                        t[13], t[14], t[15]};
    b.insert(b.end(), {0x60, 0, 0, 0});
    put16(b, static_cast<std::uint16_t>(icmp.size()));
    b.push_back(kIcmp6);
    b.push_back(255);
    put_words(b, sender.words, 4);
    b.insert(b.end(), dst_ip.begin(), dst_ip.end());
    // checksum over the pseudo-header
    Bytes pseudo;
    put_words(pseudo, sender.words, 4);
    pseudo.insert(pseudo.end(), dst_ip.begin(), dst_ip.end());
    pseudo.insert(pseudo.end(), {0, 0, 0, static_cast<std::uint8_t>(icmp.size()), 0, 0, 0, kIcmp6});
    pseudo.insert(pseudo.end(), icmp.begin(), icmp.end());
    std::uint16_t c = inet_checksum(pseudo.data(), pseudo.size());
    icmp[2] = static_cast<std::uint8_t>(c >> 8);
    icmp[3] = static_cast<std::uint8_t>(c);
    b.insert(b.end(), icmp.begin(), icmp.end());
    return b;
}

} // namespace nlb::test
