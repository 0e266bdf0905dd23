// Strict reading of a parsed JSON document: every value carries the key path that reached it,
// so each type, range or unknown-key error becomes one ConfigError line naming that path.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace nlb {

// A JSON value and its path ("port_rules[1].ports"; "" is the document itself).
class JsonField {
  public:
    JsonField(const nlohmann::json& value, std::string path)
        : value_(&value), path_(std::move(path)) {}

    const nlohmann::json& value() const { return *value_; }
    const std::string& path() const { return path_; }

    // Throws ConfigError "<path>: <problem>".
    [[noreturn]] void fail(const std::string& problem) const;

    std::string string() const;
    bool boolean() const;
    // An integer (not 1.5, not "5", not true) within [min, max].
    std::int64_t integer(std::int64_t min, std::int64_t max) const;
    // A number (integer or not) within [min, max].
    double number(double min, double max) const;
    // Checks the value is an array; elements via element().
    std::size_t array_size() const;
    JsonField element(std::size_t index) const;

  private:
    const nlohmann::json* value_;
    std::string path_;
};

// An object's keys, each read at most once; finish() rejects the keys nobody asked for.
class ObjectReader {
  public:
    explicit ObjectReader(const JsonField& field);

    std::optional<JsonField> optional(std::string_view key);
    JsonField required(std::string_view key);
    // Throws "<path>.<key>: unknown key" for the first key not read.
    void finish() const;

  private:
    JsonField field_;
    std::set<std::string, std::less<>> read_;
};

// `text` with every byte that does not belong to a well-formed UTF-8 sequence replaced by '?':
// what may go into a JSON answer or a log line.
std::string valid_utf8(std::string_view text);

// "a JSON string", "an integer", ... for "expected X, got Y" messages.
const char* json_type_name(const nlohmann::json& value);

// Parses JSON text, rejecting a key repeated within one object (nlohmann would keep the last
// one silently). Throws ConfigError: "<source>: line L, column C: <reason>" for bad syntax,
// "<path>: duplicate key" for a repeated key.
nlohmann::json parse_json_strict(std::string_view text, std::string_view source);

} // namespace nlb
