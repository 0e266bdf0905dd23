// The metrics endpoint (docs/metrics.md): just enough HTTP/1.1 for a Prometheus scrape.
// GET /metrics answers the page, anything else 404 or 405, and every connection is closed
// after one answer. Whoever can reach the port is a stranger: a request head, the time a
// connection may stay open and the number of connections open at once are all bounded.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace nlb {

struct MetricsLimits {
    std::size_t max_head = 8 * 1024;          // request line and headers; longer: closed unanswered
    std::chrono::milliseconds deadline{5000}; // from accept to the answer sent
    std::size_t max_connections = 16;         // more at once: closed at accept
};

class MetricsServer {
  public:
    // The page's body, built when a scrape asks for it.
    using Page = std::function<std::string()>;

    // Listens on `endpoint`; throws std::runtime_error "metrics: listen 127.0.0.1:9650:
    // Address already in use".
    MetricsServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
                  Page page, MetricsLimits limits = {});
    // Closes the listener and every open connection; the page is never asked for again.
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // The port it listens on (the one the kernel chose when `endpoint` said 0).
    std::uint16_t port() const;

    struct Shared; // what connections share with the server; they may outlive it

  private:
    void accept();

    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer backoff_; // after an accept error (out of descriptors)
    std::shared_ptr<Shared> shared_;
};

// The whole HTTP answer to one request head (request line and headers, without the blank
// line): 200 with the page for GET /metrics, 400, 404 or 405 otherwise, always with
// Content-Length and "Connection: close".
std::string http_answer(std::string_view head, const MetricsServer::Page& page);

// "127.0.0.1:9650", "[::1]:9650".
std::string to_string(const boost::asio::ip::tcp::endpoint& endpoint);

} // namespace nlb
