// The client side of the local control protocol (docs/control.md): connect to the agent's
// Unix socket, write one JSON request line, read one JSON response line.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace nlb::cli {

// No agent at the socket, or it did not answer in time (exit code 3). what() is one line:
// "cannot reach nlb-agent at /run/nlb/nlb.sock: No such file or directory (is nlb-agent
// running?)".
class AgentUnreachable : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The agent answered something that is no response object (exit code 1).
class BadAnswer : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Long enough for an agent busy with a convergence, short enough for a script to move on.
inline constexpr std::chrono::milliseconds kAnswerTimeout{5000};
// A `map` answer is a few hundred KiB; anything far larger is no answer of ours.
inline constexpr std::size_t kMaxAnswer = 64 * 1024 * 1024;

// Sends `request`, returns the response object ({"ok": ...}). Throws AgentUnreachable or
// BadAnswer.
nlohmann::json call_agent(const std::string& socket_path, const nlohmann::json& request,
                          std::chrono::milliseconds timeout = kAnswerTimeout);

} // namespace nlb::cli
