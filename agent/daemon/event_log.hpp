// Event and diagnostic lines on stderr (journald takes them from there), as text
// ("level event key=value ...") or as one JSON object per line.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace nlb {

enum class LogFormat { text, json };

class EventLog {
  public:
    explicit EventLog(LogFormat format = LogFormat::text) : format_(format) {}

    void event(const std::string& name, const nlohmann::json& fields = nlohmann::json::object());
    void warn(const std::string& message);
    void error(const std::string& message);

  private:
    void line(const char* level, const std::string& name, const nlohmann::json& fields);

    LogFormat format_;
};

} // namespace nlb
