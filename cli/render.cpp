#include "render.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

namespace nlb::cli {

namespace {

using nlohmann::json;

// The agent's JSON objects come back with sorted keys; humans read them in these orders (keys
// not listed follow, alphabetically).
const std::vector<std::string> kSectionOrder = {
    "host", "cluster", "rules", "port_rules", "metrics",
    // host and cluster
    "priority", "state", "reason", "interface", "xdp_mode", "xdp_mode_reason", "vlan_interface",
    "dedicated_ip", "initial_state", "ip", "vips", "mode", "mac", "converged", "members",
    "default_host",
    // cluster parameters
    "heartbeat_ms", "heartbeat_tolerance", "key_file", "remote_control", "remote_config",
    "cleanup_delay_s"};
const std::vector<std::string> kColumnOrder = {
    "rule",     "slot",          "index",         "vip",         "ports",
    "protocol", "mode",          "affinity",      "load_weight", "handling_priority",
    "control",  "buckets_owned", "buckets_total", "name",        "type",
    "verdict",  "since",         "last_result",   "last_detail"};

// What identifies a port rule, in the order of a rule's title.
constexpr const char* kRuleKeys[] = {"vip", "ports", "protocol", "mode", "affinity"};

std::vector<std::string> ordered_keys(const std::vector<std::string>& keys,
                                      const std::vector<std::string>& order) {
    auto rank = [&](const std::string& key) {
        return std::find(order.begin(), order.end(), key) - order.begin();
    };
    std::vector<std::string> out = keys;
    std::stable_sort(out.begin(), out.end(),
                     [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
    return out;
}

std::vector<std::string> keys_of(const json& object) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : object.items())
        keys.push_back(key);
    return ordered_keys(keys, kSectionOrder);
}

bool is_table(const json& v) {
    return v.is_array() && !v.empty() &&
           std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_object(); });
}

// One cell or value: "0-65535" for a [first, last] port pair, lists joined by ", ".
std::string text(const std::string& key, const json& v) {
    if (v.is_string())
        return v.get<std::string>();
    if (v.is_boolean())
        return v.get<bool>() ? "yes" : "no";
    if (v.is_null())
        return "-";
    if (key == "ports" && v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number())
        return v[0].dump() + "-" + v[1].dump();
    if (v.is_array()) {
        if (v.empty())
            return "-";
        std::string out;
        for (const auto& e : v)
            out += (out.empty() ? "" : ", ") + text("", e);
        return out;
    }
    return v.dump();
}

std::string header(const std::string& key) {
    std::string h = key;
    for (char& c : h)
        c = c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return h;
}

std::string table_of(const json& rows, int indent, const std::vector<std::string>& skip = {}) {
    std::vector<std::string> keys;
    for (const auto& row : rows)
        for (const auto& [key, value] : row.items())
            if (std::find(keys.begin(), keys.end(), key) == keys.end() &&
                std::find(skip.begin(), skip.end(), key) == skip.end())
                keys.push_back(key);
    keys = ordered_keys(keys, kColumnOrder);
    std::vector<std::string> headers;
    for (const auto& k : keys)
        headers.push_back(header(k));
    std::vector<std::vector<std::string>> cells;
    for (const auto& row : rows) {
        std::vector<std::string> line;
        for (const auto& k : keys)
            line.push_back(row.contains(k) ? text(k, row[k]) : "-");
        cells.push_back(line);
    }
    return render_table(headers, cells, indent);
}

// An object as "key  value" lines (aligned), nested objects and tables indented below.
std::string section(const json& object, int indent) {
    std::string pad(static_cast<std::size_t>(indent), ' ');
    std::size_t width = 0;
    for (const auto& [key, value] : object.items())
        if (!value.is_object() && !is_table(value))
            width = std::max(width, key.size());
    std::string out;
    for (const auto& key : keys_of(object)) {
        const json& value = object[key];
        if (value.is_object()) {
            out += pad + key + "\n" + section(value, indent + 2);
        } else if (is_table(value)) {
            out += pad + key + "\n" + table_of(value, indent + 2);
        } else {
            std::string label = key;
            label.resize(width, ' ');
            out += pad + label + "  " + text(key, value) + "\n";
        }
    }
    return out;
}

std::string percent(double part, double whole) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f%%", whole > 0 ? 100.0 * part / whole : 0.0);
    return buf;
}

// Top level: sections separated by blank lines, scalars together first.
std::string sections(const json& result) {
    if (!result.is_object())
        return is_table(result) ? table_of(result, 0) : text("", result) + "\n";
    json scalars = json::object();
    for (const auto& [key, value] : result.items())
        if (!value.is_object() && !is_table(value))
            scalars[key] = value;
    std::string out = section(scalars, 0);
    for (const auto& key : keys_of(result)) {
        const json& value = result[key];
        if (!value.is_object() && !is_table(value))
            continue;
        if (!out.empty())
            out += "\n";
        out += key + "\n" + (value.is_object() ? section(value, 2) : table_of(value, 2));
    }
    return out;
}

// "rule 0: all, 0-65535, both, multiple"; the agent's "rule" key (a number, or "default" for
// the default host's slot) names the rule when present.
std::string rule_title(const json& rule, std::size_t position) {
    std::string title = "rule " + std::to_string(position);
    if (rule.contains("rule") && rule["rule"].is_string())
        title = rule["rule"].get<std::string>() + " rule";
    else if (rule.contains("rule") && rule["rule"].is_number())
        title = "rule " + rule["rule"].dump();
    else if (rule.contains("index") && rule["index"].is_number())
        title = "rule " + rule["index"].dump();
    std::string what;
    for (const char* key : kRuleKeys)
        if (rule.contains(key))
            what += (what.empty() ? "" : ", ") + text(key, rule[key]);
    return what.empty() ? title : title + ": " + what;
}

// owner priority → buckets; nullopt when the rule carries no ownership we can read.
std::optional<std::map<int, std::size_t>> owner_counts(const json& rule) {
    std::map<int, std::size_t> counts;
    // The count object when there is one: an empty or absent bucket array says nothing.
    for (const char* key : {"buckets_per_owner", "owners"}) {
        if (!rule.contains(key) || rule[key].empty())
            continue;
        const json& owners = rule[key];
        if (owners.is_array() && std::all_of(owners.begin(), owners.end(),
                                             [](const json& o) { return o.is_number_integer(); })) {
            for (const auto& o : owners)
                ++counts[o.get<int>()];
            return counts;
        }
        if (owners.is_object()) {
            for (const auto& [owner, n] : owners.items()) {
                if (!n.is_number_unsigned() && !n.is_number_integer())
                    return std::nullopt;
                counts[owner == "none" ? 0 : std::atoi(owner.c_str())] += n.get<std::size_t>();
            }
            return counts;
        }
    }
    return std::nullopt;
}

std::string map_rule(const json& rule, std::size_t position) {
    std::string out = rule_title(rule, position) + "\n";
    // Whatever else the agent tells about the rule (dirty bucket counts, ...) follows.
    json rest = rule;
    for (const char* key : kRuleKeys)
        rest.erase(key);
    for (const char* key : {"rule", "index", "slot"})
        rest.erase(key);
    auto counts = owner_counts(rule);
    if (!counts)
        return out + section(rest, 2);
    rest.erase("owners");
    rest.erase("buckets_per_owner");
    if (rest.contains("dirty") && rest["dirty"].is_array())
        rest["dirty"] = rest["dirty"].size();
    std::size_t total = 0;
    for (const auto& [owner, n] : *counts)
        total += n;
    std::vector<std::vector<std::string>> rows;
    for (const auto& [owner, n] : *counts)
        rows.push_back({owner == 0 ? "none" : std::to_string(owner), std::to_string(n),
                        percent(static_cast<double>(n), static_cast<double>(total))});
    return out + render_table({"OWNER", "BUCKETS", "SHARE"}, rows, 2) + section(rest, 2);
}

// stats: the host's figures first, then per rule the packet counters and the buckets as two
// tables (one would be too wide to read), then the other counter groups as sections.
std::string render_stats(const json& result) {
    if (!result.is_object() || !result.contains("rules") || !is_table(result["rules"]))
        return sections(result);
    const std::vector<std::string> head = {
        "version", "state", "members", "convergences", "last_convergence_s", "tracked_connections"};
    // Per-rule keys: (key, header) for the packets table, then the buckets table.
    const std::vector<std::pair<std::string, std::string>> packets = {
        {"rule", "RULE"},
        {"accepted", "ACCEPTED"},
        {"dropped_not_owner", "DROP NOT OWNER"},
        {"dropped_dirty", "DROP DIRTY"},
        {"dropped_disabled", "DROP DISABLED"},
        {"dropped_watchdog", "DROP WATCHDOG"},
        {"tracked", "TRACKED"}};
    const std::vector<std::pair<std::string, std::string>> buckets = {
        {"rule", "RULE"},
        {"buckets_owned", "OWNED"},
        {"dirty_buckets", "DIRTY HERE"},
        {"dirty_elsewhere", "DIRTY ELSEWHERE"}};

    json rest = result;
    std::size_t width = 0;
    std::vector<std::string> order;
    for (const auto& key : head)
        if (rest.contains(key) && !rest[key].is_structured())
            order.push_back(key);
    for (const auto& [key, value] : result.items())
        if (!value.is_structured() && std::find(head.begin(), head.end(), key) == head.end())
            order.push_back(key);
    for (const auto& key : order)
        width = std::max(width, key.size());
    std::string out;
    for (const auto& key : order) {
        std::string label = key;
        label.resize(width, ' ');
        std::string value = text(key, rest[key]);
        if (key == "last_convergence_s" && rest[key].is_number())
            value += " s";
        out += label + "  " + value + "\n";
        rest.erase(key);
    }

    auto table = [&](const std::vector<std::pair<std::string, std::string>>& columns, bool others) {
        std::vector<std::string> keys, headers;
        for (const auto& [key, title] : columns) {
            keys.push_back(key);
            headers.push_back(title);
        }
        // Counters this nlbadm does not know yet (a newer agent) go with the packets.
        if (others)
            for (const auto& rule : result["rules"])
                for (const auto& item : rule.items()) {
                    const std::string& key = item.key();
                    if (std::find(keys.begin(), keys.end(), key) == keys.end() &&
                        std::none_of(buckets.begin(), buckets.end(),
                                     [&](const auto& b) { return b.first == key; })) {
                        keys.push_back(key);
                        headers.push_back(header(key));
                    }
                }
        std::vector<std::vector<std::string>> rows;
        for (const auto& rule : result["rules"]) {
            std::vector<std::string> line;
            for (const auto& key : keys)
                line.push_back(rule.contains(key) ? text(key, rule[key]) : "-");
            rows.push_back(line);
        }
        return render_table(headers, rows, 2);
    };
    out += (out.empty() ? "" : "\n") + std::string("packets\n") + table(packets, true);
    out += "\nbuckets\n" + table(buckets, false);
    rest.erase("rules");
    // Counter groups, each with its main figures first, then the rest (reasons) by name.
    const std::vector<std::pair<std::string, std::vector<std::string>>> groups = {
        {"dataplane", {"watchdog_alive"}},
        {"heartbeats", {"sent", "received", "accepted"}},
        {"remote_control", {"answered"}}};
    for (const auto& [group, first] : groups) {
        if (!rest.contains(group) || !rest[group].is_object())
            continue;
        const json& counters = rest[group];
        std::vector<std::string> keys;
        for (const auto& key : first)
            if (counters.contains(key))
                keys.push_back(key);
        for (const auto& item : counters.items())
            if (std::find(keys.begin(), keys.end(), item.key()) == keys.end())
                keys.push_back(item.key());
        std::size_t w = 0;
        for (const auto& key : keys)
            w = std::max(w, key.size());
        out += "\n" + group + "\n";
        for (const auto& key : keys) {
            std::string label = key;
            label.resize(w, ' ');
            out += "  " + label + "  " + text(key, counters[key]) + "\n";
        }
        rest.erase(group);
    }
    if (!rest.empty())
        out += "\n" + sections(rest);
    return out;
}

} // namespace

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows, int indent) {
    std::vector<std::size_t> width(headers.size(), 0);
    auto measure = [&](const std::vector<std::string>& line) {
        for (std::size_t i = 0; i < line.size() && i < width.size(); ++i)
            width[i] = std::max(width[i], line[i].size());
    };
    measure(headers);
    for (const auto& row : rows)
        measure(row);
    auto format = [&](const std::vector<std::string>& line) {
        std::string out(static_cast<std::size_t>(indent), ' ');
        for (std::size_t i = 0; i < width.size(); ++i) {
            std::string cell = i < line.size() ? line[i] : "";
            if (i + 1 < width.size())
                cell.resize(width[i] + 2, ' ');
            out += cell;
        }
        return out + "\n";
    };
    std::string out = format(headers);
    for (const auto& row : rows)
        out += format(row);
    return out;
}

std::string render_query(const json& result) {
    if (!result.is_object() || !result.contains("rules") || !is_table(result["rules"]))
        return sections(result);
    // One "buckets" column, "1366/4096 (33.3%)", reads better than two bare numbers.
    json shown = result;
    for (auto& rule : shown["rules"]) {
        if (rule.contains("buckets_owned") && rule["buckets_owned"].is_number() &&
            rule.contains("buckets_total") && rule["buckets_total"].is_number()) {
            double owned = rule["buckets_owned"].get<double>();
            double total = rule["buckets_total"].get<double>();
            rule["buckets"] = rule["buckets_owned"].dump() + "/" + rule["buckets_total"].dump() +
                              " (" + percent(owned, total) + ")";
            rule.erase("buckets_owned");
            rule.erase("buckets_total");
        }
    }
    // Health probes (docs/health.md): one line each, what an operator looks for first; the
    // counts toward a change and the exact times stay in --json.
    if (shown.contains("health") && shown["health"].is_object() &&
        shown["health"].contains("probes") && is_table(shown["health"]["probes"])) {
        json rows = json::array();
        for (const auto& p : shown["health"]["probes"]) {
            json row = json::object();
            for (const char* key :
                 {"name", "verdict", "since", "last_result", "last_detail", "rules"})
                if (p.contains(key))
                    row[key] = p[key];
            rows.push_back(std::move(row));
        }
        shown["health"]["probes"] = std::move(rows);
    }
    return sections(shown);
}

std::string render_map(const json& result) {
    const json* rules = nullptr;
    if (is_table(result))
        rules = &result;
    else if (result.is_object() && result.contains("rules") && is_table(result["rules"]))
        rules = &result["rules"];
    if (result.is_object() && result.contains("rules") && result["rules"].is_array() &&
        result["rules"].empty())
        return "map: no bucket map installed (not attached, or no convergence yet)\n";
    if (!rules)
        return sections(result);
    std::string out;
    for (std::size_t i = 0; i < rules->size(); ++i) {
        const json& rule = (*rules)[i];
        out += (out.empty() ? "" : "\n") + map_rule(rule, i);
    }
    if (result.is_object()) {
        json rest = result;
        rest.erase("rules");
        if (!rest.empty())
            out += "\n" + sections(rest);
    }
    return out;
}

std::string render_generic(const json& result) {
    return sections(result);
}

std::string render(const std::string& command, const json& result) {
    if (command == "query")
        return render_query(result);
    if (command == "map")
        return render_map(result);
    if (command == "params" || command == "stats") {
        if (result.is_null() || (result.is_object() && result.empty()))
            return command + ": nothing to show (not attached?)\n";
        return command == "stats" ? render_stats(result) : render_generic(result);
    }
    // Actions (start, attach, ...) answer little or nothing: say it worked.
    if (result.is_null() || (result.is_object() && result.empty()))
        return command + ": ok\n";
    return render_generic(result);
}

std::string one_line(std::string text) {
    for (char& c : text)
        if (c == '\n' || c == '\r')
            c = ' ';
    return text;
}

} // namespace nlb::cli
