#include "event_log.hpp"

#include <chrono>
#include <cstdio>

namespace nlb {

void EventLog::event(const std::string& name, const nlohmann::json& fields) {
    line("info", name, fields);
}

void EventLog::warn(const std::string& message) {
    line("warning", "warning", {{"message", message}});
}

void EventLog::error(const std::string& message) {
    line("error", "error", {{"message", message}});
}

void EventLog::line(const char* level, const std::string& name, const nlohmann::json& fields) {
    std::string out;
    if (format_ == LogFormat::json) {
        nlohmann::json j = fields.is_object() ? fields : nlohmann::json::object();
        auto now = std::chrono::system_clock::now().time_since_epoch();
        j["ts"] = std::chrono::duration<double>(now).count();
        j["level"] = level;
        j["event"] = name;
        out = j.dump();
    } else {
        out = std::string(level) + " " + name;
        if (fields.is_object())
            for (auto it = fields.begin(); it != fields.end(); ++it)
                out += " " + it.key() + "=" +
                       (it->is_string() ? it->get<std::string>() : it->dump());
    }
    std::fprintf(stderr, "%s\n", out.c_str());
    std::fflush(stderr);
}

} // namespace nlb
