#include "control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

namespace nlb {

namespace {

using boost::asio::local::stream_protocol;

class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(stream_protocol::socket socket, const ControlServer::Handler& handler,
            std::shared_ptr<std::size_t> open)
        : socket_(std::move(socket)), handler_(handler), in_(kMaxControlLine),
          idle_(socket_.get_executor()), open_(std::move(open)) {
        ++*open_;
    }
    ~Session() { --*open_; }

    void read() {
        // A client that holds the connection and sends nothing costs a descriptor until then.
        idle_.expires_after(kControlIdle);
        idle_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) {
                boost::system::error_code ignored;
                self->socket_.close(ignored);
            }
        });
        boost::asio::async_read_until(
            socket_, in_, '\n',
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                if (ec)
                    return; // closed, or a line over the limit: drop the connection
                std::string line(boost::asio::buffers_begin(self->in_.data()),
                                 boost::asio::buffers_begin(self->in_.data()) +
                                     static_cast<std::ptrdiff_t>(n));
                self->in_.consume(n);
                self->answer(line);
            });
    }

  private:
    void answer(const std::string& line) {
        nlohmann::json response;
        try {
            response = handler_(nlohmann::json::parse(line));
        } catch (const nlohmann::json::exception&) {
            response = {{"ok", false}, {"error", "request is not a JSON object"}};
        } catch (const std::exception& e) {
            response = {{"ok", false}, {"error", e.what()}};
        }
        // replace, not throw: an answer quoting bytes that are not UTF-8 (a file name, a
        // message from outside) must still be sent, and must not end the agent
        out_ = response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        boost::asio::async_write(socket_, boost::asio::buffer(out_),
                                 [self = shared_from_this()](const boost::system::error_code& ec,
                                                             std::size_t) {
                                     if (!ec)
                                         self->read();
                                 });
    }

    stream_protocol::socket socket_;
    const ControlServer::Handler& handler_;
    boost::asio::streambuf in_;
    std::string out_;
    boost::asio::steady_timer idle_;
    std::shared_ptr<std::size_t> open_;
};

} // namespace

bool ControlServer::someone_listens(const std::string& path) {
    boost::asio::io_context io;
    stream_protocol::socket probe(io);
    boost::system::error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    return !ec;
}

ControlServer::ControlServer(boost::asio::io_context& io, std::string path, Handler handler)
    : path_(std::move(path)), acceptor_(io), backoff_(io), handler_(std::move(handler)) {
    std::string what = "control socket " + path_ + ": ";
    if (someone_listens(path_))
        throw std::runtime_error(what + "another nlb-agent is listening there");
    // Only a socket is replaced: a --socket that names another file by mistake must not
    // cost that file (the agent runs as root).
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
        throw std::runtime_error(what + "exists and is not a socket (nothing removed)");
    ::unlink(path_.c_str());
    boost::system::error_code ec;
    acceptor_.open(stream_protocol(), ec);
    // Only root may control the agent: the socket is created 0600.
    mode_t old = ::umask(0177);
    if (!ec)
        acceptor_.bind(stream_protocol::endpoint(path_), ec);
    ::umask(old);
    if (!ec)
        acceptor_.listen(16, ec);
    if (ec)
        throw std::runtime_error(what + ec.message());
    accept();
}

ControlServer::~ControlServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    backoff_.cancel();
    ::unlink(path_.c_str());
}

void ControlServer::accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec,
                                  stream_protocol::socket socket) {
        if (ec == boost::asio::error::operation_aborted)
            return;
        if (ec) {
            // Out of descriptors, most likely: a connection left in the backlog makes every
            // accept fail at once, and retrying at once would spin the agent's one thread.
            backoff_.expires_after(std::chrono::milliseconds(100));
            backoff_.async_wait([this](const boost::system::error_code& e) {
                if (!e)
                    accept();
            });
            return;
        }
        if (*open_ < kMaxControlSessions) {
            std::make_shared<Session>(std::move(socket), handler_, open_)->read();
        } else {
            boost::system::error_code ignored;
            socket.close(ignored); // over the limit: closed at once, unanswered
        }
        accept();
    });
}

} // namespace nlb
