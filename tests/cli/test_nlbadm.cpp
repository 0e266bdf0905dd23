// nlbadm end to end: the real binary (and run()) against a fake agent socket — the wire
// framing, the request line, the exit codes of docs/control.md and the one-line errors.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <future>
#include <sstream>

#include "command_line.hpp"
#include "control_client.hpp"
#include "fake_agent.hpp"
#include "nlbadm.hpp"

extern char** environ;

using namespace nlb::cli;
using nlb::cli::test::FakeAgent;

namespace {

struct Result {
    int code = -1;
    std::string out;
    std::string err;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Runs the real nlbadm binary, stdout and stderr to files (no pipe to deadlock on).
Result run_binary(std::vector<std::string> args) {
    std::string base = "/tmp/nlb-test-cli-" + std::to_string(::getpid());
    std::string out = base + ".out", err = base + ".err";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    args.insert(args.begin(), NLBADM_PATH);
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, NLBADM_PATH, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(out);
    r.err = slurp(err);
    ::unlink(out.c_str());
    ::unlink(err.c_str());
    return r;
}

Result run_in_process(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    Result r;
    r.code = run(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

} // namespace

TEST_CASE("nlbadm binary: a refused command exits 1 with the agent's error") {
    FakeAgent agent(R"({"ok": false, "error": "enable: no port rule covers port 81"})");
    Result r = run_binary({"--socket", agent.path(), "enable", "81"});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err == "nlbadm: enable: no port rule covers port 81\n");
    // One JSON object, one newline: the framing of docs/control.md.
    CHECK(agent.received() == "{\"command\":\"enable\",\"port\":81}\n");
}

TEST_CASE("nlbadm binary: --json prints the result pretty-printed") {
    FakeAgent agent(R"({"ok": true, "result": {"host": {"priority": 2, "state": "converged"}}})");
    Result r = run_binary({"--socket", agent.path(), "--json", "status"});
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out ==
          "{\n  \"host\": {\n    \"priority\": 2,\n    \"state\": \"converged\"\n  }\n}\n");
    CHECK(agent.received() == "{\"command\":\"query\"}\n");
}

TEST_CASE("nlbadm binary: no agent at the socket exits 3") {
    std::string missing = "/tmp/nlb-test-cli-missing-" + std::to_string(::getpid()) + ".sock";
    Result r = run_binary({"--socket", missing, "query"});
    CHECK(r.code == 3);
    CHECK(r.out.empty());
    CHECK(r.err == "nlbadm: cannot reach nlb-agent at " + missing +
                       ": No such file or directory (is nlb-agent running?)\n");
}

TEST_CASE("nlbadm binary: usage errors exit 2, help and version exit 0") {
    Result bad = run_binary({"frobnicate"});
    CHECK(bad.code == 2);
    CHECK(bad.err == "nlbadm: unknown command \"frobnicate\" (see nlbadm --help)\n");
    Result port = run_binary({"enable", "70000"});
    CHECK(port.code == 2);
    CHECK(port.err == "nlbadm: enable: bad port \"70000\" (0-65535 or all)\n");
    Result help = run_binary({"--help"});
    CHECK(help.code == 0);
    CHECK(help.out == help_text());
    Result version = run_binary({"--version"});
    CHECK(version.code == 0);
    CHECK(version.out == "nlbadm " NLB_VERSION "\n");
}

TEST_CASE("run: a successful action prints '<command>: ok' and sends its arguments") {
    FakeAgent agent(R"({"ok": true, "result": {}})");
    Result r = run_in_process({"--socket", agent.path(), "attach", "eth0"});
    CHECK(r.code == 0);
    CHECK(r.out == "attach: ok\n");
    CHECK(r.err.empty());
    CHECK(agent.received() == "{\"command\":\"attach\",\"interface\":\"eth0\"}\n");
}

TEST_CASE("run: push sends the file's shared part; a bad file is a usage error (2)") {
    FakeAgent agent(R"({"ok": true, "result": {}})");
    const std::string file = agent.path() + ".json";
    {
        std::ofstream out(file);
        out << R"({"cluster": {"ip": "10.0.0.1", "heartbeat_ms": 200},
                   "host": {"priority": 1, "dedicated_ip": "10.0.0.11"},
                   "port_rules": [{"ports": [80, 81], "protocol": "tcp"}]})";
    }
    Result r = run_in_process({"--socket", agent.path(), "push", file});
    CHECK(r.code == 0);
    const auto sent = nlohmann::json::parse(agent.received());
    CHECK(sent["command"] == "push");
    CHECK(sent["rules"] == "*:80-81:t:m:s");
    CHECK(sent["heartbeat_ms"] == 200);
    {
        std::ofstream out(file);
        out << R"({"cluster": {"ip": "10.0.0.1", "heartbeat_ms": 5}})";
    }
    Result bad = run_in_process({"--socket", agent.path(), "push", file});
    CHECK(bad.code == 2);
    CHECK(bad.err.rfind("nlbadm: push: ", 0) == 0);
    CHECK(bad.err.find("heartbeat_ms") != std::string::npos);
    std::remove(file.c_str());
}

TEST_CASE("run: an agent that closes without answering is unreachable (3)") {
    FakeAgent agent("", FakeAgent::Behaviour::close_silent);
    Result r = run_in_process({"--socket", agent.path(), "stop"});
    CHECK(r.code == 3);
    CHECK(r.err ==
          "nlbadm: nlb-agent at " + agent.path() + " closed the connection without answering\n");
}

TEST_CASE("run: a socket file nobody listens on is unreachable (3)") {
    std::string path = "/tmp/nlb-test-cli-stale-" + std::to_string(::getpid()) + ".sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    ::close(fd); // the file stays, as after an agent that died
    Result r = run_in_process({"--socket", path, "query"});
    ::unlink(path.c_str());
    CHECK(r.code == 3);
    CHECK(r.err == "nlbadm: cannot reach nlb-agent at " + path +
                       ": Connection refused (is nlb-agent running?)\n");
}

TEST_CASE("run: answers that are no response objects fail the command (1)") {
    struct Case {
        const char* answer;
        std::string error;
    };
    for (const auto& c : std::vector<Case>{
             {"not json", " sent an answer that is not JSON"},
             {"[1, 2]", " sent an answer without \"ok\""},
             {R"({"result": {}})", " sent an answer without \"ok\""},
         }) {
        FakeAgent agent(c.answer);
        Result r = run_in_process({"--socket", agent.path(), "query"});
        CHECK(r.code == 1);
        CHECK(r.err == "nlbadm: query: nlb-agent at " + agent.path() + c.error + "\n");
    }
    FakeAgent agent(R"({"ok": false})");
    Result r = run_in_process({"--socket", agent.path(), "start"});
    CHECK(r.code == 1);
    CHECK(r.err == "nlbadm: start: refused by nlb-agent (no reason given)\n");
}

TEST_CASE("call_agent: an agent that never answers times out as unreachable") {
    FakeAgent agent("", FakeAgent::Behaviour::never_answer);
    CHECK_THROWS_WITH(
        call_agent(agent.path(), {{"command", "query"}}, std::chrono::milliseconds(200)),
        "nlb-agent at " + agent.path() + " did not answer within 200 ms");
}

TEST_CASE("call_agent: an agent whose backlog is full times out too, not waiting forever") {
    // A listener that never accepts, its queue already full: what an agent held up leaves
    // once earlier callers' connections are queued.
    const std::string path = "/tmp/nlb-test-cli-full-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    const auto* a = reinterpret_cast<const sockaddr*>(&address);
    REQUIRE(::bind(listener, a, sizeof(address)) == 0);
    REQUIRE(::listen(listener, 0) == 0);
    std::vector<int> queued;
    for (int i = 0; i < 4; ++i) { // until a non-blocking connect finds the queue full
        const int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        queued.push_back(c);
        if (::connect(c, a, sizeof(address)) < 0) {
            REQUIRE(errno == EAGAIN);
            break;
        }
    }
    // On a thread: without the limit the call would never come back; closing the listener
    // below ends such a wait, so the test fails instead of hanging.
    auto call = std::async(std::launch::async, [&] {
        try {
            call_agent(path, {{"command", "query"}}, std::chrono::milliseconds(200));
        } catch (const AgentUnreachable& e) {
            return std::string(e.what());
        }
        return std::string("answered");
    });
    const bool back = call.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
    ::close(listener);
    CHECK(back);
    CHECK(call.get() == "nlb-agent at " + path + " did not answer within 200 ms");
    for (int c : queued)
        ::close(c);
    ::unlink(path.c_str());
}

TEST_CASE("run: local commands need no agent") {
    Result mac = run_in_process({"--socket", "/nonexistent", "ip2mac", "192.0.2.100"});
    CHECK(mac.code == 0);
    CHECK(mac.out == "02:bf:c0:00:02:64\n");
    Result multicast = run_in_process({"ip2mac", "192.0.2.100", "--mode", "multicast"});
    CHECK(multicast.out == "03:bf:c0:00:02:64\n");
    Result igmp = run_in_process({"ip2mac", "192.0.2.100", "--mode", "igmp"});
    CHECK(igmp.out == "01:00:5e:7f:02:64 (IGMP group 239.255.2.100)\n");
    Result json = run_in_process({"--json", "ip2mac", "192.0.2.100"});
    CHECK(nlohmann::json::parse(json.out) ==
          nlohmann::json{{"ip", "192.0.2.100"}, {"mode", "unicast"}, {"mac", "02:bf:c0:00:02:64"}});

    Result key1 = run_in_process({"keygen"});
    Result key2 = run_in_process({"keygen"});
    CHECK(key1.code == 0);
    REQUIRE(key1.out.size() == 65);
    CHECK(key1.out.find_first_not_of("0123456789abcdef") == 64);
    CHECK(key1.out != key2.out);
    Result key_json = run_in_process({"--json", "keygen"});
    CHECK(nlohmann::json::parse(key_json.out)["key"].get<std::string>().size() == 64);
}

TEST_CASE("keygen --out: a new file with mode 0600 whatever the umask, never an existing one") {
    const std::string dir = "/tmp/nlb-test-keygen-" + std::to_string(::getpid());
    ::mkdir(dir.c_str(), 0700);
    const std::string path = dir + "/cluster.key";
    ::unlink(path.c_str());
    const mode_t old_umask = ::umask(0); // the most permissive an operator could have
    Result r = run_in_process({"keygen", "--out", path});
    ::umask(old_umask);
    CHECK(r.code == 0);
    CHECK(r.out.empty()); // the key goes to the file only
    CHECK(r.err.empty());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    const std::string key = slurp(path);
    REQUIRE(key.size() == 65);
    CHECK(key.find_first_not_of("0123456789abcdef") == 64);
    CHECK(key.back() == '\n');

    // An existing file is left as it was, whatever it holds.
    Result again = run_in_process({"keygen", "--out", path});
    CHECK(again.code == kExitRefused);
    CHECK(again.out.empty());
    CHECK(again.err == "nlbadm: keygen: --out " + path +
                           ": File exists (nlbadm keygen never overwrites a key)\n");
    CHECK(slurp(path) == key);

    // A symlink is not followed, even a dangling one.
    const std::string link = dir + "/link.key", target = dir + "/target";
    ::unlink(link.c_str());
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
    CHECK(run_in_process({"keygen", "--out", link}).code == kExitRefused);
    CHECK(::access(target.c_str(), F_OK) != 0);

    Result json = run_in_process({"--json", "keygen", "--out", dir + "/json.key"});
    CHECK(json.code == 0);
    CHECK(nlohmann::json::parse(json.out) == nlohmann::json{{"file", dir + "/json.key"}});

    Result nodir = run_in_process({"keygen", "--out", dir + "/missing/cluster.key"});
    CHECK(nodir.code == kExitRefused);
    CHECK(nodir.err ==
          "nlbadm: keygen: --out " + dir + "/missing/cluster.key: No such file or directory\n");

    for (const char* f : {"/cluster.key", "/link.key", "/json.key"})
        ::unlink((dir + f).c_str());
    ::rmdir(dir.c_str());
}
