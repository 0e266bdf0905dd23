#include "metrics_server.hpp"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <utility>
#include <vector>

#include <boost/asio/buffers_iterator.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "metrics_text.hpp"

namespace nlb {

using boost::asio::ip::tcp;

class MetricsSession;

struct MetricsServer::Shared {
    MetricsServer::Page page; // empty once the server is gone
    MetricsLimits limits;
    std::vector<std::weak_ptr<MetricsSession>> open; // at most limits.max_connections alive
};

namespace {

using Iterator = boost::asio::buffers_iterator<boost::asio::streambuf::const_buffers_type>;

// The blank line that ends a request head: CRLF CRLF, or bare LF LF from lax clients. Where
// the bytes read so far end inside it (a client that sends the head line by line, a segment
// split there), the next read's search starts again at its first line feed: resumed after
// it, the rest of the blank line alone would never match and the request would wait for the
// deadline, unanswered.
std::pair<Iterator, bool> end_of_head(Iterator begin, Iterator end) {
    for (Iterator it = begin; it != end; ++it) {
        if (*it != '\n')
            continue;
        Iterator next = it + 1;
        if (next != end && *next == '\r')
            ++next;
        if (next == end)
            return {it, false};
        if (*next == '\n')
            return {next + 1, true};
    }
    return {end, false};
}

std::string answer(const char* status, const std::string& content_type, const std::string& body,
                   const char* extra_header = "") {
    return std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + content_type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_header +
           "Connection: close\r\n\r\n" + body;
}

std::string plain(const char* status, const std::string& body, const char* extra_header = "") {
    return answer(status, "text/plain; charset=utf-8", body, extra_header);
}

} // namespace

class MetricsSession : public std::enable_shared_from_this<MetricsSession> {
  public:
    MetricsSession(tcp::socket socket, std::shared_ptr<MetricsServer::Shared> shared)
        : socket_(std::move(socket)), shared_(std::move(shared)), deadline_(socket_.get_executor()),
          in_(shared_->limits.max_head) {}

    void start() {
        deadline_.expires_after(shared_->limits.deadline);
        deadline_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec)
                self->close(); // too slow: whatever is pending fails and releases the session
        });
        boost::asio::async_read_until(
            socket_, in_, end_of_head,
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                if (ec) {
                    // Closed early, the deadline, or a head over the limit (not_found):
                    // nothing worth an answer.
                    self->close();
                    return;
                }
                self->respond(
                    std::string_view(static_cast<const char*>(self->in_.data().data()), n));
            });
    }

    void close() {
        boost::system::error_code ignored;
        deadline_.cancel();
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
    }

  private:
    void respond(std::string_view head) {
        const auto& page = shared_->page;
        if (!page) {
            close();
            return;
        }
        out_ = http_answer(head, page);
        boost::asio::async_write(socket_, boost::asio::buffer(out_),
                                 [self = shared_from_this()](const boost::system::error_code&,
                                                             std::size_t) { self->close(); });
    }

    tcp::socket socket_;
    std::shared_ptr<MetricsServer::Shared> shared_;
    boost::asio::steady_timer deadline_;
    boost::asio::streambuf in_;
    std::string out_;
};

std::string http_answer(std::string_view head, const MetricsServer::Page& page) {
    std::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    // METHOD SP TARGET SP HTTP/1.x, nothing else.
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos ||
        line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0)
        return plain("400 Bad Request", "bad request\n");
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    if (method != "GET")
        return plain("405 Method Not Allowed", "only GET\n", "Allow: GET\r\n");
    if (target != "/metrics")
        return plain("404 Not Found", "not found: the metrics are at /metrics\n");
    try {
        return answer("200 OK", kMetricsContentType, page());
    } catch (const std::exception& e) {
        return plain("500 Internal Server Error", std::string(e.what()) + "\n");
    }
}

std::string to_string(const tcp::endpoint& endpoint) {
    std::string host = endpoint.address().to_string();
    if (endpoint.address().is_v6())
        host = "[" + host + "]";
    return host + ":" + std::to_string(endpoint.port());
}

MetricsServer::MetricsServer(boost::asio::io_context& io, const tcp::endpoint& endpoint, Page page,
                             MetricsLimits limits)
    : acceptor_(io), backoff_(io), shared_(std::make_shared<Shared>()) {
    shared_->page = std::move(page);
    shared_->limits = limits;
    boost::system::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    // A restarted agent must not wait for the old one's connections to leave TIME_WAIT.
    if (!ec)
        acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec)
        acceptor_.bind(endpoint, ec);
    if (!ec)
        acceptor_.listen(static_cast<int>(limits.max_connections), ec);
    if (ec)
        throw std::runtime_error("metrics: listen " + to_string(endpoint) + ": " + ec.message());
    accept();
}

MetricsServer::~MetricsServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    backoff_.cancel();
    shared_->page = nullptr;
    for (auto& weak : shared_->open)
        if (auto session = weak.lock())
            session->close();
}

std::uint16_t MetricsServer::port() const {
    return acceptor_.local_endpoint().port();
}

void MetricsServer::accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == boost::asio::error::operation_aborted)
            return;
        if (ec) {
            // Out of descriptors, most likely: try again a little later instead of spinning.
            backoff_.expires_after(std::chrono::milliseconds(100));
            backoff_.async_wait([this](const boost::system::error_code& e) {
                if (!e)
                    accept();
            });
            return;
        }
        auto& open = shared_->open;
        open.erase(
            std::remove_if(open.begin(), open.end(),
                           [](const std::weak_ptr<MetricsSession>& w) { return w.expired(); }),
            open.end());
        if (open.size() < shared_->limits.max_connections) {
            auto session = std::make_shared<MetricsSession>(std::move(socket), shared_);
            open.push_back(session);
            session->start();
        } else {
            boost::system::error_code ignored;
            socket.close(ignored); // over the limit: closed at once, unanswered
        }
        accept();
    });
}

} // namespace nlb
