#include "event_log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

namespace nlb {

struct EventLog::Sink {
    int fd = -1;
    bool own_fd = false; // a duplicate: the writer may outlive the caller's descriptor
    std::size_t capacity = 0;
    std::mutex m;
    std::condition_variable wake; // lines queued, or stop
    std::condition_variable idle; // the writer wrote what it had, or ended
    std::deque<std::string> lines;
    std::size_t bytes = 0;
    std::uint64_t dropped = 0;    // since the start
    std::uint64_t unreported = 0; // dropped since the last notice
    std::uint64_t logged = 0;     // lines offered since the start: written, queued or dropped
    bool writing = false;         // the writer holds a batch it took from the queue
    bool stop = false;
    bool ended = false;
    bool threaded = false;

    ~Sink() {
        if (own_fd)
            ::close(fd);
    }

    // Writes all of `out`, waiting while the sink is full; false if the sink refused it.
    bool write_all(const std::string& out) const {
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::write(fd, out.data() + done, out.size() - done);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
            } else if (n < 0 && errno == EAGAIN) { // a descriptor someone set non-blocking
                pollfd p{fd, POLLOUT, 0};
                ::poll(&p, 1, 1000);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                return false;
            }
        }
        return true;
    }

    void run() {
        std::unique_lock lk(m);
        for (;;) {
            wake.wait(lk, [&] { return stop || !lines.empty(); });
            if (lines.empty())
                break;
            std::string out;
            std::size_t n = 0;
            for (; !lines.empty(); lines.pop_front(), ++n) {
                out += lines.front();
                out += '\n';
            }
            bytes = 0; // the batch in hand is bounded by the queue it came from
            writing = true;
            lk.unlock();
            const bool written = write_all(out);
            lk.lock();
            writing = false;
            if (!written) {
                dropped += n;
                unreported += n;
            }
            idle.notify_all();
        }
        ended = true;
        idle.notify_all();
    }
};

EventLog::EventLog(LogFormat format, int fd, std::size_t queue_bytes)
    : format_(format), sink_(std::make_shared<Sink>()) {
    sink_->fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    sink_->own_fd = sink_->fd >= 0;
    if (!sink_->own_fd)
        sink_->fd = fd;
    sink_->capacity = queue_bytes;
    try {
        std::thread([sink = sink_] { sink->run(); }).detach();
        sink_->threaded = true;
    } catch (const std::system_error&) {
        // No thread: lines are written on the caller's, as they always were.
    }
}

EventLog::~EventLog() {
    std::unique_lock lk(sink_->m);
    sink_->stop = true;
    sink_->wake.notify_all();
    if (sink_->threaded)
        sink_->idle.wait_for(lk, std::chrono::seconds(2), [&] { return sink_->ended; });
}

bool EventLog::flush(std::chrono::milliseconds limit) {
    std::unique_lock lk(sink_->m);
    if (!sink_->threaded)
        return true;
    return sink_->idle.wait_for(
        lk, limit, [&] { return sink_->ended || (sink_->lines.empty() && !sink_->writing); });
}

std::uint64_t EventLog::lines() const {
    std::lock_guard lk(sink_->m);
    return sink_->logged;
}

bool EventLog::flush_since(std::uint64_t mark, std::chrono::milliseconds limit) {
    if (lines() == mark)
        return true;
    return flush(limit);
}

std::uint64_t EventLog::dropped() const {
    std::lock_guard lk(sink_->m);
    return sink_->dropped;
}

void EventLog::event(const std::string& name, const nlohmann::json& fields) {
    line("info", name, fields);
}

void EventLog::warn(const std::string& message) {
    line("warning", "warning", {{"message", message}});
}

void EventLog::error(const std::string& message) {
    line("error", "error", {{"message", message}});
}

std::string EventLog::format(LogFormat format, const char* level, const std::string& name,
                             const nlohmann::json& fields) {
    if (format == LogFormat::json) {
        nlohmann::json j = fields.is_object() ? fields : nlohmann::json::object();
        auto now = std::chrono::system_clock::now().time_since_epoch();
        j["ts"] = std::chrono::duration<double>(now).count();
        j["level"] = level;
        j["event"] = name;
        // a message quoting bytes that are not UTF-8 is logged with U+FFFD, never thrown
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    std::string out = std::string(level) + " " + name;
    if (fields.is_object())
        for (auto it = fields.begin(); it != fields.end(); ++it)
            out += " " + escape_text(it.key()) + "=" +
                   (it->is_string()
                        ? escape_text(it->get<std::string>())
                        : it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return out;
}

// A text line's values come from config files, interface names, remote control's commands:
// a newline among them would start a line of the writer's choosing (a forged event in the
// journal), so control characters are written as escapes, and backslashes doubled so that
// an escape in the text is never mistaken for one.
std::string EventLog::escape_text(const std::string& value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (u < 0x20 || u == 0x7f) {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 15];
        } else {
            out += c;
        }
    }
    return out;
}

void EventLog::line(const char* level, const std::string& name, const nlohmann::json& fields) {
    std::string out = format(format_, level, name, fields);
    Sink& s = *sink_;
    std::unique_lock lk(s.m);
    ++s.logged;
    if (!s.threaded) {
        lk.unlock();
        if (!s.write_all(out + '\n')) {
            lk.lock();
            ++s.dropped;
        }
        return;
    }
    // Where lines were dropped, the first line that fits again says how many, in their place.
    std::string notice;
    if (s.unreported)
        notice = format(format_, "warning", "log_lines_dropped",
                        {{"count", s.unreported},
                         {"message", "the log's sink took nothing while its queue filled: " +
                                         std::to_string(s.unreported) + " lines dropped"}});
    const std::size_t need = out.size() + 1 + (notice.empty() ? 0 : notice.size() + 1);
    if (s.bytes + need > s.capacity) {
        ++s.dropped;
        ++s.unreported;
        return;
    }
    s.bytes += need;
    if (!notice.empty()) {
        s.lines.push_back(std::move(notice));
        s.unreported = 0;
    }
    s.lines.push_back(std::move(out));
    s.wake.notify_one();
}

} // namespace nlb
