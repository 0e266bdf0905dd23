// Agent::reload (SIGHUP, `systemctl reload nlb-agent`, `nlbadm reload`) and `nlbadm push`
// and `diff`, the per-rule `enabled` key they and attach apply, and the switch to a staged
// configuration (docs/staged-config.md).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent.hpp"
#include "config_reload.hpp"
#include "control_reply.hpp"
#include "digest.hpp"
#include "engine_config.hpp"
#include "json_reader.hpp"
#include "kept_number.hpp"
#include "shared_config.hpp"

namespace nlb {

using json = nlohmann::json;

void Agent::disable_rules_off_here(std::chrono::milliseconds now) {
    for (std::size_t i = 0; i < config_.port_rules.size(); ++i)
        if (!config_.port_rules[i].enabled)
            engine_->on_command({CommandKind::rule_drain, static_cast<int>(i)}, now);
}

namespace {

// pushed.json is read at every start and a damaged one stops the agent (exit 2): its bytes
// are on disk before the rename makes it the file, so a power cut leaves the old file or the
// new one, never an empty one (ext4 does not flush a rename that replaces nothing; XFS none).
// Only into a regular file, and never waiting on a FIFO found at the name (open_to_write).
void write_durably(const std::filesystem::path& path, const std::string& text) {
    std::string error;
    const int fd = open_to_write(path.string(), error);
    if (fd < 0)
        throw std::runtime_error("cannot write " + error);
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int err = errno;
            ::close(fd);
            throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(err));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::runtime_error("cannot sync " + path.string() + ": " + std::strerror(err));
    }
    ::close(fd);
}

void sync_directory(const std::filesystem::path& dir, std::error_code& ec) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0)
        ec = std::error_code(errno, std::generic_category());
    if (fd >= 0)
        ::close(fd);
}

} // namespace

Config Agent::effective_config(const AgentOptions& options) {
    Config config = load_config(options.config_path);
    const std::string pushed = options.state_dir + "/pushed.json";
    // A FIFO (or a device) there would block the start, or a reload and the agent's loop.
    std::error_code type_ec;
    const auto type = std::filesystem::status(pushed, type_ec).type();
    if (!type_ec && type != std::filesystem::file_type::regular &&
        type != std::filesystem::file_type::not_found)
        throw ConfigError(pushed + ": not a regular file (remove it to run " + options.config_path +
                          " as it is)");
    std::ifstream in(pushed);
    if (!in) {
        // Nothing pushed. One that is there but cannot be read would leave the host on the
        // file's rules and timing where the cluster runs the pushed ones: said, not skipped.
        std::error_code ec;
        if (std::filesystem::symlink_status(pushed, ec).type() !=
                std::filesystem::file_type::not_found &&
            !ec)
            throw ConfigError(pushed + ": cannot read it (" + std::strerror(errno) +
                              "; remove it to run " + options.config_path + " as it is)");
        return config;
    }
    const std::string remove_it = " (remove it to run " + options.config_path + " as it is)";
    std::ostringstream text;
    text << in.rdbuf();
    nlohmann::json part;
    try {
        // As strictly as nlb.json: a repeated key is an error, and the message is one line of
        // valid UTF-8 whatever bytes a damaged file holds.
        part = parse_json_strict(text.str(), pushed);
    } catch (const ConfigError& e) {
        throw ConfigError(std::string(e.what()) + remove_it);
    }
    try {
        return with_shared(config, part);
    } catch (const ConfigError& e) {
        throw ConfigError(pushed + ": " + e.what() + remove_it);
    }
}

Agent::ReloadResult Agent::reload() {
    Config next;
    try {
        next = effective_config(options_);
    } catch (const std::exception& e) {
        ReloadResult result;
        result.error = std::string("reload: ") + e.what() + " (nothing changed)";
        log_.error(result.error);
        return result;
    }
    return apply_config(std::move(next), "reload");
}

Agent::ReloadResult Agent::apply_config(Config next, const std::string& what) {
    const std::string& path = options_.config_path;
    ReloadResult result;
    auto refuse = [&](const std::string& why) {
        result.error = what + ": " + why + " (nothing changed)";
        log_.error(result.error);
        return result;
    };
    const ReloadPlan plan = plan_reload(config_, next);
    // A refused push is not kept: a restart runs this host's file as before, so only an edit
    // of that file (then a restart) changes such a key, never the push.
    if (plan.fixed)
        return refuse(*plan.fixed + " changed: " +
                      (what == "push" ? "a push cannot change it (only this host's " + path +
                                            " can, with a restart of nlb-agent)"
                                      : std::string("restart nlb-agent to apply it")));
    // Where this host reaches peers that have not spoken yet: its own business, in force at
    // once whatever else waits for the cluster (once nothing refused the reload).
    // Against the engine's list, not config_: a staged reload sets it without config_.
    const bool new_peers = engine_ && engine_->config().host.peers != contact_peers(next);
    if (engine_ && !plan.staged.empty()) {
        // What every host must share waits for the cluster; this host's own values of the
        // rules come with it (they are values of the new rules).
        const auto now = monotonic_now();
        try {
            EngineConfig staged = engine_config_of(next);
            staged.host.rules = host_rule_params(next);
            if (load_)
                load_->apply_to(staged.host.rules); // load feedback's rules keep their places
            const VipLayout running = tables_.layout();
            const std::uint64_t changed = changed_slots(
                tables_, tables_of(next, engine_->config().cluster.flow_seed, &running));
            if (auto error = engine_->stage(std::move(staged), changed, now); !error.empty())
                return refuse(error);
        } catch (const std::exception& e) {
            return refuse(e.what());
        }
        if (new_peers)
            engine_->set_contact_peers(contact_peers(next));
        staged_ = std::move(next);
        log_.event("staged", {{"by", what},
                              {"config", path},
                              {"staged", plan.staged},
                              {"changed", plan.live},
                              // staged, or (the last host to stage it) switched to
                              {"fingerprint",
                               digest_text(engine_->staged_digest() ? engine_->staged_digest()
                                                                    : engine_->active_digest())},
                              {"waiting_for", members_of(engine_->staged_waiting())}});
        result.applied = true;
        result.changed = plan.live;
        result.staged = plan.staged;
        apply(engine_->take_decision()); // alone, or the last host to stage: switches now
        return result;
    }
    if (staged_) {
        // Back to the running shared set, or (detached) a configuration applied whole: what
        // was staged is no more, and an attach must not stage it again over this one.
        if (engine_)
            engine_->stage(engine_->config(), 0, monotonic_now());
        staged_.reset();
        log_.event("unstaged", {{"by", what}, {"config", path}});
    }
    if (new_peers)
        engine_->set_contact_peers(contact_peers(next));
    const Config before = std::move(config_);
    config_ = std::move(next);
    health_->set_rules(config_); // detached, the rules may have moved (attach rebuilds the rest)
    if (load_)
        load_->reconfigure(config_); // the operator's weights, under the same factors
    if (engine_ && !plan.live.empty()) {
        const auto now = monotonic_now();
        // Validated by parse_config already; a refusal here would be a bug between the two.
        if (!engine_->set_host_rules(host_rules(), now))
            log_.error(what + ": the engine refused the new rule parameters");
        for (std::size_t i = 0; i < config_.port_rules.size(); ++i) {
            if (before.port_rules[i].enabled == config_.port_rules[i].enabled)
                continue; // an `nlbadm disable` since start stays as the operator left it
            // Off is a drain: a reload never resets the connections a host serves.
            engine_->on_command(
                {config_.port_rules[i].enabled ? CommandKind::rule_enable : CommandKind::rule_drain,
                 static_cast<int>(i)},
                now);
        }
        apply(engine_->take_decision());
    }
    // Detached, the shared keys apply at the next attach like everything else.
    result.staged = engine_ ? std::vector<std::string>{} : plan.staged;
    log_.event(what == "reload" ? "reloaded" : "pushed_applied",
               {{"config", path}, {"changed", plan.live}});
    result.applied = true;
    result.changed = plan.live;
    return result;
}

json Agent::push(const json& request, bool apply_it) {
    const std::string what = apply_it ? "push" : "diff";
    const bool remote = request.contains("remote_from");
    if (apply_it && remote && !config_.cluster.remote_config)
        return error("push: cluster.remote_config is off on host " +
                     std::to_string(config_.host.priority) + " (nothing changed)");
    json part = request;
    part.erase("command");
    part.erase("remote_from");
    Config next;
    try {
        // This host's own values (weights, handling priorities, enabled) come from its file's
        // rules, as at every later start and reload (effective_config): taken from the running
        // rules, a push that reshapes rules a second time kept values that the next reload or
        // restart silently changed.
        Config own = config_;
        const Config file = load_config(options_.config_path);
        own.cluster.vips = file.cluster.vips; // the file's rules name VIPs by their place here
        own.port_rules = file.port_rules;
        next = with_shared(own, part);
    } catch (const std::exception& e) {
        return error(std::string(e.what()) + " (nothing changed)");
    }
    if (!apply_it) // against what the push would do: apply_config, staged_ included
        return ok(diff_answer(plan_reload(config_, next), staged_.has_value()));
    // Kept before it is applied, so that a push that cannot be kept changes nothing; put
    // back as it was when the agent refuses it.
    const std::filesystem::path dir(options_.state_dir);
    const auto file = dir / "pushed.json";
    const auto temp = dir / "pushed.json.new";
    try {
        std::filesystem::create_directories(dir);
        write_durably(temp, part.dump(2) + "\n");
    } catch (const std::exception& e) {
        return error("push: " + std::string(e.what()) + " (nothing changed)");
    }
    const ReloadResult r = apply_config(std::move(next), "push");
    std::error_code ec;
    if (!r.applied) {
        std::filesystem::remove(temp, ec);
        return error(r.error);
    }
    std::filesystem::rename(temp, file, ec);
    if (ec) {
        log_.error("push: keep " + file.string() + ": " + ec.message() +
                   " (applied, but the next start runs the config file's rules)");
    } else {
        std::error_code synced;
        sync_directory(dir, synced); // the rename itself outlives a power cut
        if (synced)
            log_.error("push: sync " + dir.string() + ": " + synced.message() +
                       " (applied and kept; a power cut now may leave the earlier one)");
    }
    log_.event("pushed", {{"from", remote ? request["remote_from"] : json("control socket")},
                          {"staged", r.staged},
                          {"changed", r.changed},
                          {"kept", ec ? json(nullptr) : json(file.string())}});
    const std::uint64_t staged = engine_ ? engine_->staged_digest() : 0;
    return ok({{"changed", r.changed},
               {"staged", r.staged},
               {"fingerprint", staged ? json(digest_text(staged)) : json(nullptr)},
               {"waiting_for", members_of(engine_ ? engine_->staged_waiting() : 0)},
               {"kept", ec ? json(nullptr) : json(file.string())}});
}

void Agent::switch_config(std::chrono::milliseconds now) {
    if (!staged_) {
        log_.error("the engine switched to a configuration this agent never staged");
        return;
    }
    ++config_switches_;
    const Config before = std::move(config_);
    config_ = std::move(*staged_);
    staged_.reset();
    // Built once: the file passed every check when it was staged.
    const VipLayout running = tables_.layout();
    DataplaneTables next = tables_of(config_, tables_.flow_seed(), &running);
    const std::uint64_t changed = changed_slots(tables_, next);
    tables_ = std::move(next);
    // Each step on its own: one that fails (logged) must not keep the next from running, the
    // tables above all, which must follow the engine's switch whatever else went wrong.
    auto step = [&](const char* what, auto&& run) {
        try {
            run();
        } catch (const std::exception& e) {
            log_.error(std::string("config switch: ") + what + ": " + e.what());
        }
    };
    // A VIP that goes leaves the stack first, then the tables; one that comes enters the
    // tables first, then the stack: at no moment does a stack hold a VIP that the dataplane
    // passes it unfiltered (every host's stack would answer it).
    step("remove VIPs", [&] { iface_->remove_vips_except(tables_.vips()); });
    const bool v6 = has_ipv6(tables_.vips());
    if (v6) // before the kernel may solicit from a new IPv6 VIP
        step("ND egress", [&] { dp_->set_nd_egress(true); });
    // The engine released the changed slots first: what the new port table sends there meets
    // no bucket owned here, only connections still tracked here.
    step("dataplane tables", [&] {
        dp_->maps().write_tables(tables_);
        write_rule_modes(dp_->maps());
    });
    std::vector<IpAddress> added;
    step("add VIPs", [&] { added = iface_->add_vips(tables_.vips()); });
    if (!v6)
        step("ND egress", [&] { dp_->set_nd_egress(false); });
    if (announced_ && !added.empty()) // else the first announcement, once converged, has them
        step("announce", [&] { iface_->announce(added); });
    set_heartbeat_linger();
    health_->set_rules(config_);
    engine_->set_probe_down(health_->down_rules(), now);
    if (load_) {
        load_->reconfigure(config_);
        // The staged set carries the weights feedback had set when it was staged; feedback
        // has moved on since, maybe, and would not say so again (it reports changes only).
        if (!engine_->set_host_rules(host_rules(), now))
            log_.error("config switch: the engine refused the weights load feedback set");
    }
    // `enabled` as the file says: for a rule whose slot changed (or a new one) the engine
    // starts enabled; for one that stayed, only a change of the key counts (an `nlbadm
    // disable` since start stays as the operator left it), as on any reload.
    for (std::size_t i = 0; i < config_.port_rules.size(); ++i) {
        const bool same = i < before.port_rules.size() && !((changed >> i) & 1);
        const bool on = config_.port_rules[i].enabled;
        if (same && before.port_rules[i].enabled == on)
            continue;
        if (!on || same)
            engine_->on_command(
                {on ? CommandKind::rule_enable : CommandKind::rule_drain, static_cast<int>(i)},
                now);
    }
    log_.event("config_applied", {{"fingerprint", digest_text(engine_->active_digest())},
                                  {"vips", to_strings(tables_.vips())},
                                  {"vips_added", to_strings(added)},
                                  {"rules", config_.port_rules.size()},
                                  {"heartbeat_ms", config_.cluster.heartbeat_ms}});
    apply(engine_->take_decision());
}

} // namespace nlb
