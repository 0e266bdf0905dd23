#include "json_reader.hpp"

#include <sstream>
#include <vector>

#include "config.hpp"

namespace nlb {

namespace {

std::string child_path(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string describe(const nlohmann::json& value) {
    std::string text = value.dump();
    if (text.size() > 40) {
        // cut where a character starts: half a UTF-8 sequence would make the message, and
        // any JSON answer or log line that carries it, invalid
        std::size_t cut = 37;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
            --cut;
        text = text.substr(0, cut) + "...";
    }
    return text;
}

} // namespace

const char* json_type_name(const nlohmann::json& value) {
    switch (value.type()) {
    case nlohmann::json::value_t::null:
        return "null";
    case nlohmann::json::value_t::boolean:
        return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
        return "an integer";
    case nlohmann::json::value_t::number_float:
        return "a number with a fraction";
    case nlohmann::json::value_t::string:
        return "a string";
    case nlohmann::json::value_t::array:
        return "an array";
    case nlohmann::json::value_t::object:
        return "an object";
    default:
        return "something else";
    }
}

void JsonField::fail(const std::string& problem) const {
    throw ConfigError((path_.empty() ? std::string("top level") : path_) + ": " + problem);
}

std::string JsonField::string() const {
    if (!value_->is_string())
        fail(std::string("expected a string, got ") + json_type_name(*value_));
    return value_->get<std::string>();
}

bool JsonField::boolean() const {
    if (!value_->is_boolean())
        fail(std::string("expected true or false, got ") + json_type_name(*value_));
    return value_->get<bool>();
}

double JsonField::number(double min, double max) const {
    if (!value_->is_number())
        fail(std::string("expected a number, got ") + json_type_name(*value_));
    const double v = value_->get<double>();
    auto text = [](double d) {
        std::ostringstream o;
        o << d;
        return o.str();
    };
    if (!(v >= min))
        fail(text(v) + " below the minimum " + text(min));
    if (!(v <= max))
        fail(text(v) + " above the maximum " + text(max));
    return v;
}

std::int64_t JsonField::integer(std::int64_t min, std::int64_t max) const {
    if (value_->is_number_unsigned()) {
        // Unsigned values above INT64_MAX cannot be in range; compare before converting.
        auto v = value_->get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(max))
            fail(std::to_string(v) + " above the maximum " + std::to_string(max));
    } else if (!value_->is_number_integer()) {
        fail(std::string("expected an integer, got ") + json_type_name(*value_));
    }
    auto v = value_->get<std::int64_t>();
    if (v < min)
        fail(std::to_string(v) + " below the minimum " + std::to_string(min));
    if (v > max)
        fail(std::to_string(v) + " above the maximum " + std::to_string(max));
    return v;
}

std::size_t JsonField::array_size() const {
    if (!value_->is_array())
        fail(std::string("expected an array, got ") + json_type_name(*value_));
    return value_->size();
}

JsonField JsonField::element(std::size_t index) const {
    return JsonField((*value_)[index], path_ + "[" + std::to_string(index) + "]");
}

ObjectReader::ObjectReader(const JsonField& field) : field_(field) {
    if (!field.value().is_object())
        field.fail(std::string("expected an object, got ") + json_type_name(field.value()) + " " +
                   describe(field.value()));
}

std::optional<JsonField> ObjectReader::optional(std::string_view key) {
    read_.emplace(key);
    auto it = field_.value().find(key);
    if (it == field_.value().end())
        return std::nullopt;
    return JsonField(*it, child_path(field_.path(), key));
}

JsonField ObjectReader::required(std::string_view key) {
    auto field = optional(key);
    if (!field)
        throw ConfigError(child_path(field_.path(), key) + ": required key missing");
    return *field;
}

void ObjectReader::finish() const {
    for (const auto& [key, value] : field_.value().items())
        if (!read_.contains(key))
            throw ConfigError(child_path(field_.path(), key) + ": unknown key");
}

namespace {

// Where the parser is: one frame per open object or array, to name a repeated key's path.
struct Frame {
    bool is_array = false;
    std::size_t index = 0;      // arrays: the element being read
    std::string key;            // objects: the key being read
    std::set<std::string> keys; // objects: keys seen so far
};

std::string path_of(const std::vector<Frame>& frames) {
    std::string path;
    for (std::size_t i = 1; i < frames.size(); ++i) {
        const Frame& parent = frames[i - 1];
        path = parent.is_array ? path + "[" + std::to_string(parent.index) + "]"
                               : child_path(path, parent.key);
    }
    return path;
}

void element_done(std::vector<Frame>& frames) {
    if (!frames.empty() && frames.back().is_array)
        ++frames.back().index;
}

// "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..." →
// "line 3, column 5: syntax error ...", on one line.
std::string syntax_reason(const std::string& what) {
    std::string reason = what;
    if (auto at = reason.find("at line "); at != std::string::npos)
        reason = reason.substr(at + 3);
    else if (auto bracket = reason.find("] "); bracket != std::string::npos)
        reason = reason.substr(bracket + 2);
    for (char& c : reason)
        if (c == '\n' || c == '\r')
            c = ' ';
    // nlohmann quotes the bytes it read last as they were: a file saved as Latin-1 puts bytes
    // into the message that no JSON answer or log line may carry
    return valid_utf8(reason);
}

} // namespace

std::string valid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
        const unsigned char lead = byte(i);
        std::size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF; // the second byte's range (RFC 3629, section 4)
        if (lead < 0x80)
            len = 1;
        else if (lead >= 0xC2 && lead <= 0xDF)
            len = 2;
        else if (lead >= 0xE0 && lead <= 0xEF) {
            len = 3;
            lo = lead == 0xE0 ? 0xA0 : 0x80;
            hi = lead == 0xED ? 0x9F : 0xBF;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            len = 4;
            lo = lead == 0xF0 ? 0x90 : 0x80;
            hi = lead == 0xF4 ? 0x8F : 0xBF;
        }
        bool ok = len > 0 && i + len <= text.size();
        for (std::size_t k = 1; ok && k < len; ++k)
            ok = k == 1 ? byte(i + k) >= lo && byte(i + k) <= hi : (byte(i + k) & 0xC0) == 0x80;
        if (!ok) {
            out += '?';
            ++i;
            continue;
        }
        out.append(text.substr(i, len));
        i += len;
    }
    return out;
}

nlohmann::json parse_json_strict(std::string_view text, std::string_view source) {
    using Event = nlohmann::json::parse_event_t;
    std::vector<Frame> frames;
    auto track = [&frames](int, Event event, nlohmann::json& parsed) {
        switch (event) {
        case Event::object_start:
        case Event::array_start:
            frames.emplace_back();
            frames.back().is_array = event == Event::array_start;
            break;
        case Event::key: {
            Frame& object = frames.back();
            object.key = parsed.get<std::string>();
            if (!object.keys.insert(object.key).second)
                throw ConfigError(child_path(path_of(frames), object.key) + ": duplicate key");
            break;
        }
        case Event::object_end:
        case Event::array_end:
            frames.pop_back();
            element_done(frames);
            break;
        case Event::value:
            element_done(frames);
            break;
        }
        return true;
    };
    try {
        return nlohmann::json::parse(text, track);
    } catch (const nlohmann::json::parse_error& e) {
        throw ConfigError(std::string(source) + ": " + syntax_reason(e.what()));
    }
}

} // namespace nlb
