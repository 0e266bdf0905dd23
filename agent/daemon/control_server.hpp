// The local control socket (docs/control.md): a Unix stream socket, mode 0600, one JSON
// request per line, one JSON response per line.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

namespace nlb {

class ControlServer {
  public:
    // Maps a request to a response ({"ok": ...}); may throw std::exception, answered as
    // {"ok": false, "error": what()}.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

    // Throws std::runtime_error "control socket PATH: <reason>" (another agent listening
    // there is one, a file there that is no socket another). A stale socket file left by a
    // dead agent is replaced.
    ControlServer(boost::asio::io_context& io, std::string path, Handler handler);
    ~ControlServer(); // removes the socket file
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const { return path_; }
    // Whether an agent accepts connections on `path` now (a stale socket file: no).
    static bool someone_listens(const std::string& path);

  private:
    void accept();

    std::string path_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    boost::asio::steady_timer backoff_;
    Handler handler_;
    std::shared_ptr<std::size_t> open_ = std::make_shared<std::size_t>(0); // live sessions
};

// Longest request line accepted; a longer one closes the connection.
constexpr std::size_t kMaxControlLine = 64 * 1024;
// Connections served at once; one more is closed unanswered. nlbadm opens one per command.
constexpr std::size_t kMaxControlSessions = 64;
// A connection that sends no whole request for this long is closed.
constexpr std::chrono::seconds kControlIdle{60};

} // namespace nlb
