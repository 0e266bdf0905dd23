// The segment's IGMP querier (cluster.igmp_querier, igmp mode only). Snooping switches learn
// which ports want a group from the members' reports, and members report when a querier asks:
// on a segment without one (no multicast router), a switch floods the cluster MAC to every
// port or, once its state ages out, forgets the cluster's ports. This host offers to ask.
// Querier election (RFC 2236 §3, RFC 3376 §6.6.2): every candidate queries, and one that hears
// a query from a lower address falls silent for the Other Querier Present Interval, taking
// over again when that passes without one. Nothing here grows with what the network sends: one
// address remembered, a bounded batch of datagrams read per wakeup into a fixed buffer.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <boost/asio/generic/raw_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "batch_reader.hpp"
#include "event_log.hpp"

namespace nlb {

namespace igmp {

inline constexpr int kRobustness = 2; // RFC 3376 §8.1's default

struct Query {
    std::uint32_t source = 0; // network byte order
    std::uint32_t group = 0;  // network byte order; 0: a general query
    int version = 0;          // 1, 2 or 3, from its length and max response code (RFC 3376 §7.1)
    // What an IGMPv3 query says of its querier's timing (RFC 3376 §4.1.6, §4.1.7): its
    // Robustness Variable (QRV, 0..7) and Query Interval (QQIC, decoded: seconds); 0 where the
    // query says nothing (IGMPv1/v2, or a field left zero).
    std::uint32_t robustness = 0;
    std::uint32_t interval_s = 0;
};

// A datagram as a raw IPv4 socket hands it, IP header first. A query only if every length and
// checksum holds and the source could be a querier's: not 0.0.0.0 (RFC 4541 §2.1.1: snooping
// switches' proxy queries come from it and must not win an election), loopback, multicast or
// broadcast; sent to a multicast address.
std::optional<Query> parse_query(std::span<const std::uint8_t> datagram);

// An IGMPv3 general query (RFC 3376 §4.1), checksum included. IGMPv2 hosts read it as a v2
// query: they ignore what follows the first 8 bytes (RFC 2236 §2.5).
std::array<std::uint8_t, 12> general_query(std::chrono::seconds interval);

// Max Resp Code and QQIC (RFC 3376 §4.1.1, §4.1.7): under 128 as is, above as mantissa and
// exponent, (mant | 0x10) << (exp + 3), rounded down.
std::uint8_t encode_code(std::uint32_t value);
std::uint32_t decode_code(std::uint8_t code);
// In tenths of a second: RFC 3376's 10 s, shorter for short intervals (a member must answer
// within one interval).
std::uint32_t max_response_ds(std::chrono::seconds interval);

} // namespace igmp

// Who queries, as a pure function of time and the queries heard (addresses in host byte order,
// compared as numbers: the lowest wins).
class QuerierElection {
  public:
    using ms = std::chrono::milliseconds;

    QuerierElection(std::uint32_t own_address, std::chrono::seconds interval, ms now);

    // A query heard from `source`. True when it silences this host (it was the querier).
    // `robustness` and `interval_s`: what the query says of its querier (igmp::Query; 0:
    // nothing). This host stays silent for the Other Querier Present Interval worked out with
    // them where they make it longer than this host's own (RFC 3376 §8.5: non-queriers adopt
    // the querier's QRV and QQI): a querier that queries less often than this host would
    // otherwise be taken for gone between two of its queries, and both would query.
    bool on_query(std::uint32_t source, ms now, std::uint32_t robustness = 0,
                  std::uint32_t interval_s = 0);
    struct Step {
        bool send = false;    // send a general query now
        bool resumed = false; // the other querier went quiet: this host queries again
    };
    // Call at or after next_deadline() (earlier is harmless).
    Step on_tick(ms now);
    ms next_deadline() const { return querier_ ? next_send_ : other_until_; }

    bool querier() const { return querier_; }
    std::optional<std::uint32_t> other_querier() const;
    // Robustness × interval + half the max response time (RFC 3376 §8.5): this host's own
    // before a query is heard, then the one the last query heard set (on_query).
    ms other_querier_present_interval() const { return other_present_; }

  private:
    std::uint32_t own_;
    ms interval_;
    ms own_other_present_; // from this host's own interval and robustness
    ms other_present_;     // in force: the last query heard set it
    bool querier_ = true;
    // A querier starting up sends Robustness queries a quarter interval apart (RFC 3376 §8.6,
    // §8.7), so that the members' state is there before the first regular interval.
    int startup_left_ = igmp::kRobustness;
    ms next_send_;
    ms other_until_{0};
    std::uint32_t other_ = 0;
};

class IgmpQuerier {
  public:
    // `source` (the dedicated IP, network byte order) is the queries' source address. Throws
    // std::runtime_error "IGMP querier on eth0: <step>: <reason>".
    IgmpQuerier(boost::asio::io_context& io, int ifindex, const std::string& ifname,
                std::uint32_t source, std::chrono::seconds interval, EventLog& log);
    IgmpQuerier(const IgmpQuerier&) = delete;
    IgmpQuerier& operator=(const IgmpQuerier&) = delete;

    // The first query goes out at once.
    void start();
    void close();

    // {"querier": bool, "other_querier": "10.0.0.1" | null, "interval_s", "queries_sent",
    //  "queries_heard", "ignored", "send_errors"}
    nlohmann::json status() const;

  private:
    void arm();
    void tick();
    void received(std::span<const std::uint8_t> datagram);

    boost::asio::generic::raw_protocol::socket socket_;
    boost::asio::steady_timer timer_;
    std::string ifname_;
    std::uint32_t source_;
    std::chrono::seconds interval_;
    EventLog& log_;
    QuerierElection election_;
    std::array<std::uint8_t, 12> query_;
    std::uint64_t sent_ = 0;
    std::uint64_t heard_ = 0;   // valid queries from others (any address)
    std::uint64_t ignored_ = 0; // IGMP datagrams that are no valid query (reports, garbage)
    std::uint64_t send_errors_ = 0;
    bool send_failing_ = false; // the last send failed: logged once per run of failures
    BatchReader reader_;        // after socket_: stopped before the socket goes
};

} // namespace nlb
