#include "igmp_querier.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace nlb {

namespace igmp {

namespace {

constexpr std::uint8_t kMembershipQuery = 0x11;
constexpr std::uint32_t kAllSystems = 0xe0000001; // 224.0.0.1, host byte order

// The Internet checksum of `bytes`: 0 when a message that carries its checksum is intact.
std::uint16_t checksum(std::span<const std::uint8_t> bytes) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < bytes.size(); i += 2)
        sum +=
            static_cast<std::uint32_t>(bytes[i] << 8) + (i + 1 < bytes.size() ? bytes[i + 1] : 0u);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

std::uint32_t be32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

bool is_multicast(std::uint32_t host_order) {
    return (host_order >> 28) == 0xe;
}

} // namespace

std::optional<Query> parse_query(std::span<const std::uint8_t> d) {
    if (d.size() < 20 || (d[0] >> 4) != 4)
        return std::nullopt;
    const std::size_t ihl = std::size_t{d[0] & 0x0fu} * 4;
    const std::size_t total = std::size_t{d[2]} << 8 | d[3];
    if (ihl < 20 || total < ihl || total > d.size())
        return std::nullopt;
    // The kernel reassembles before a raw socket sees a datagram: a fragment here is forged.
    if ((d[6] & 0x3f) != 0 || d[7] != 0 || d[9] != IPPROTO_IGMP || checksum(d.subspan(0, ihl)) != 0)
        return std::nullopt;
    const std::uint32_t source = be32(&d[12]);
    const std::uint32_t destination = be32(&d[16]);
    const std::uint8_t first = static_cast<std::uint8_t>(source >> 24);
    if (first == 0 || first == 127 || first >= 224 || !is_multicast(destination))
        return std::nullopt;

    const auto message = d.subspan(ihl, total - ihl);
    // 8 bytes: IGMPv1/v2; 12 and more: IGMPv3; 9 to 11: nothing (RFC 3376 §7.1).
    if (message.size() < 8 || (message.size() > 8 && message.size() < 12) ||
        message[0] != kMembershipQuery || checksum(message) != 0)
        return std::nullopt;
    const std::uint32_t group = be32(&message[4]);
    if (group != 0 && !is_multicast(group))
        return std::nullopt;
    if (message.size() >= 12) {
        const std::size_t sources = std::size_t{message[10]} << 8 | message[11];
        if (12 + 4 * sources > message.size())
            return std::nullopt;
    }
    Query q;
    q.source = htonl(source);
    q.group = htonl(group);
    q.version = message.size() >= 12 ? 3 : message[1] == 0 ? 1 : 2;
    if (q.version == 3) {
        q.robustness = message[8] & 0x07u;
        q.interval_s = decode_code(message[9]);
    }
    return q;
}

std::uint8_t encode_code(std::uint32_t value) {
    if (value < 128)
        return static_cast<std::uint8_t>(value);
    for (std::uint32_t exp = 0; exp < 8; ++exp) {
        const std::uint32_t mant = value >> (exp + 3); // 16..31 at the first exp that fits
        if (mant < 32)
            return static_cast<std::uint8_t>(0x80 | exp << 4 | (mant - 16));
    }
    return 0xff; // 31744, the largest the code can say
}

std::uint32_t decode_code(std::uint8_t code) {
    if (code < 128)
        return code;
    return (std::uint32_t{code & 0x0fu} | 0x10u) << (((code >> 4) & 0x07u) + 3);
}

std::uint32_t max_response_ds(std::chrono::seconds interval) {
    return static_cast<std::uint32_t>(std::min<std::int64_t>(100, interval.count() * 5));
}

std::array<std::uint8_t, 12> general_query(std::chrono::seconds interval) {
    std::array<std::uint8_t, 12> m{};
    m[0] = kMembershipQuery;
    m[1] = encode_code(max_response_ds(interval));
    // Group 0.0.0.0 (general); S flag clear, QRV = robustness; no sources.
    m[8] = static_cast<std::uint8_t>(kRobustness & 0x07);
    m[9] = encode_code(static_cast<std::uint32_t>(interval.count()));
    const std::uint16_t sum = checksum(m);
    m[2] = static_cast<std::uint8_t>(sum >> 8);
    m[3] = static_cast<std::uint8_t>(sum);
    return m;
}

} // namespace igmp

QuerierElection::QuerierElection(std::uint32_t own_address, std::chrono::seconds interval, ms now)
    : own_(own_address), interval_(interval),
      own_other_present_(igmp::kRobustness * interval_ +
                         ms(igmp::max_response_ds(interval) * 100 / 2)),
      other_present_(own_other_present_), next_send_(now) {}

bool QuerierElection::on_query(std::uint32_t source, ms now, std::uint32_t robustness,
                               std::uint32_t interval_s) {
    // Our own address (a looped-back query) or a higher one: this host stays the querier.
    if (source >= own_)
        return false;
    // The querier's robustness and interval where its query says them (zero: the defaults,
    // RFC 3376 §4.1.6, §4.1.7), the interval within what this host's configuration allows.
    const std::uint32_t rv = robustness ? robustness : igmp::kRobustness;
    const ms qi = interval_s ? ms(std::chrono::seconds(std::min<std::uint32_t>(interval_s, 3600)))
                             : interval_;
    other_present_ = std::max(own_other_present_,
                              rv * qi + (own_other_present_ - igmp::kRobustness * interval_));
    other_ = source;
    other_until_ = now + other_present_;
    const bool was = querier_;
    querier_ = false;
    startup_left_ = 0;
    return was;
}

QuerierElection::Step QuerierElection::on_tick(ms now) {
    Step step;
    if (!querier_) {
        if (now < other_until_)
            return step;
        querier_ = true;
        step.resumed = true;
        next_send_ = now;
    }
    if (now < next_send_)
        return step;
    step.send = true;
    if (startup_left_ > 1) {
        --startup_left_;
        next_send_ = now + interval_ / 4;
    } else {
        startup_left_ = 0;
        next_send_ = now + interval_;
    }
    return step;
}

std::optional<std::uint32_t> QuerierElection::other_querier() const {
    if (querier_)
        return std::nullopt;
    return other_;
}

namespace {

using Clock = std::chrono::steady_clock;

QuerierElection::ms now_ms() {
    return std::chrono::duration_cast<QuerierElection::ms>(Clock::now().time_since_epoch());
}

std::string dotted(std::uint32_t network_order) {
    char buf[INET_ADDRSTRLEN] = {};
    in_addr a{};
    a.s_addr = network_order;
    inet_ntop(AF_INET, &a, buf, sizeof(buf));
    return buf;
}

// The raw IGMP socket: receives every IGMP datagram delivered on the interface (queries go to
// 224.0.0.1, which every host has joined), sends from `source` with TTL 1, precedence
// Internetwork Control and the Router Alert option, as RFC 3376 §4 asks of every IGMP message.
int open_socket(const std::string& ifname, int ifindex, std::uint32_t source) {
    const std::string what = "IGMP querier on " + ifname + ": ";
    int fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_IGMP);
    if (fd < 0)
        throw std::runtime_error(what + "open raw IGMP socket: " + std::strerror(errno));
    auto set = [&](int level, int name, const void* value, socklen_t len, const char* step) {
        if (::setsockopt(fd, level, name, value, len) != 0) {
            int err = errno;
            ::close(fd);
            throw std::runtime_error(what + step + ": " + std::strerror(err));
        }
    };
    // Queries heard on other interfaces are other segments' elections.
    set(SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(), static_cast<socklen_t>(ifname.size()),
        "bind to the interface");
    ip_mreqn out{};
    out.imr_address.s_addr = source;
    out.imr_ifindex = ifindex;
    set(IPPROTO_IP, IP_MULTICAST_IF, &out, sizeof(out), "source address");
    const int ttl = 1, loop = 0, tos = IPTOS_PREC_INTERNETCONTROL;
    set(IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl), "TTL");
    set(IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop), "no loopback");
    set(IPPROTO_IP, IP_TOS, &tos, sizeof(tos), "TOS");
    const std::uint8_t router_alert[4] = {IPOPT_RA, 4, 0, 0};
    set(IPPROTO_IP, IP_OPTIONS, router_alert, sizeof(router_alert), "router alert option");
    return fd;
}

} // namespace

IgmpQuerier::IgmpQuerier(boost::asio::io_context& io, int ifindex, const std::string& ifname,
                         std::uint32_t source, std::chrono::seconds interval, EventLog& log)
    : socket_(io), timer_(io), ifname_(ifname), source_(source), interval_(interval), log_(log),
      election_(ntohl(source), interval, now_ms()), query_(igmp::general_query(interval)) {
    socket_.assign(boost::asio::generic::raw_protocol(AF_INET, IPPROTO_IGMP),
                   open_socket(ifname, ifindex, source));
}

void IgmpQuerier::start() {
    reader_.start(socket_, [this](std::span<const std::uint8_t> d) { received(d); });
    log_.event(
        "igmp_querier",
        {{"interface", ifname_}, {"source", dotted(source_)}, {"interval_s", interval_.count()}});
    arm();
}

void IgmpQuerier::close() {
    reader_.stop();
    timer_.cancel();
    boost::system::error_code ec;
    socket_.close(ec);
}

void IgmpQuerier::arm() {
    const auto wait = election_.next_deadline() - now_ms();
    timer_.expires_after(std::max(wait, QuerierElection::ms(0)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec)
            tick();
    });
}

void IgmpQuerier::tick() {
    const QuerierElection::Step step = election_.on_tick(now_ms());
    if (step.resumed)
        log_.event(
            "igmp_querier",
            {{"interface", ifname_},
             {"detail", "no query from a lower address for " +
                            std::to_string(election_.other_querier_present_interval().count()) +
                            " ms: querying again"}});
    if (step.send) {
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(igmp::kAllSystems);
        if (::sendto(socket_.native_handle(), query_.data(), query_.size(), MSG_DONTWAIT,
                     reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0) {
            const int err = errno;
            ++send_errors_;
            // Once per run of failures (the dedicated IP missing from the host, say).
            if (!send_failing_)
                log_.warn("IGMP querier on " + ifname_ + ": send a general query from " +
                          dotted(source_) + ": " + std::strerror(err));
            send_failing_ = true;
        } else {
            ++sent_;
            send_failing_ = false;
        }
    }
    arm();
}

void IgmpQuerier::received(std::span<const std::uint8_t> datagram) {
    const auto query = igmp::parse_query(datagram);
    if (!query) {
        ++ignored_;
        return;
    }
    if (query->source == source_)
        return; // our own, should the stack loop it back after all
    ++heard_;
    // The timer needs no re-arming: silenced, this host's next deadline only moves later.
    if (election_.on_query(ntohl(query->source), now_ms(), query->robustness, query->interval_s))
        log_.event("igmp_querier",
                   {{"interface", ifname_},
                    {"detail", "heard a query from " + dotted(query->source) +
                                   ", a lower address: it is the querier, this host stops"}});
}

nlohmann::json IgmpQuerier::status() const {
    const auto other = election_.other_querier();
    return {{"querier", election_.querier()},
            {"other_querier", other ? nlohmann::json(dotted(htonl(*other))) : nullptr},
            {"interval_s", interval_.count()},
            {"queries_sent", sent_},
            {"queries_heard", heard_},
            {"ignored", ignored_},
            {"send_errors", send_errors_}};
}

} // namespace nlb
