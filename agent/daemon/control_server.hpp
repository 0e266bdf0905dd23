// The local control socket (docs/control.md): a Unix stream socket, mode 0600, one JSON
// request per line, one JSON response per line.
#pragma once

#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

namespace nlb {

class ControlServer {
  public:
    // Maps a request to a response ({"ok": ...}); may throw std::exception, answered as
    // {"ok": false, "error": what()}.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

    // Throws std::runtime_error "control socket PATH: <reason>" (another agent listening
    // there is one). A stale socket file left by a dead agent is replaced.
    ControlServer(boost::asio::io_context& io, std::string path, Handler handler);
    ~ControlServer(); // removes the socket file
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const { return path_; }

  private:
    void accept();

    std::string path_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    Handler handler_;
};

// Longest request line accepted; a longer one closes the connection.
constexpr std::size_t kMaxControlLine = 64 * 1024;

} // namespace nlb
