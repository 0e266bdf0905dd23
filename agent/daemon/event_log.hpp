// Event and diagnostic lines on stderr (journald takes them from there), as text
// ("level event key=value ...") or as one JSON object per line.
//
// The loop never waits for the sink. A line is queued and a thread of the log's own writes it:
// a write to stderr blocks when journald is slow to read its stream, when a pipe's reader is
// stopped, or when the file system throttles writers (ext4 under a build's I/O), and a loop
// held up for (tolerance - 1) periods stalls, releases every bucket and makes the cluster
// converge. Lines that find the queue full (kQueueBytes of them unwritten) are dropped and
// counted; the first line queued after them is preceded by a `log_lines_dropped` warning that
// says how many.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace nlb {

enum class LogFormat { text, json };

class EventLog {
  public:
    // About 5,000 lines: minutes of a busy cluster's events.
    static constexpr std::size_t kQueueBytes = 1 << 20;

    // Writes to a duplicate of `fd`, queuing at most `queue_bytes` of unwritten lines.
    explicit EventLog(LogFormat format = LogFormat::text, int fd = 2,
                      std::size_t queue_bytes = kQueueBytes);
    // Waits up to 2 s for the queued lines to be written (a sink that takes nothing must not
    // hold the agent's exit).
    ~EventLog();
    EventLog(const EventLog&) = delete;
    EventLog& operator=(const EventLog&) = delete;

    void event(const std::string& name, const nlohmann::json& fields = nlohmann::json::object());
    void warn(const std::string& message);
    void error(const std::string& message);

    // Waits until every line logged so far is written, at most `limit`; false if they are
    // not. For what must follow the lines (READY=1 to systemd, the reply to a command).
    bool flush(std::chrono::milliseconds limit);
    // Lines logged so far (written, queued or dropped): a mark for flush_since.
    std::uint64_t lines() const;
    // As flush, when a line was logged after `mark` (lines()); at once otherwise. For a reply
    // that must follow only what its own command logged: a query logs nothing, and must not
    // hold the loop up for a sink that is slow to take earlier lines.
    bool flush_since(std::uint64_t mark, std::chrono::milliseconds limit);

    // Lines dropped since the start, for want of room in the queue or because the sink
    // refused them (a closed pipe).
    std::uint64_t dropped() const;

    // A text line's value: control characters as escapes (\n, \t, \r, \xNN), backslashes
    // doubled; one event is always one line.
    static std::string escape_text(const std::string& value);

  private:
    struct Sink;

    static std::string format(LogFormat format, const char* level, const std::string& name,
                              const nlohmann::json& fields);
    void line(const char* level, const std::string& name, const nlohmann::json& fields);

    LogFormat format_;
    std::shared_ptr<Sink> sink_; // shared with the writer thread, which may outlive this
};

} // namespace nlb
