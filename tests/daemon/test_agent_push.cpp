// A detached agent (no interface: no dataplane, no engine) on its own io thread, asked over its
// control socket to push: what it answers when it refuses, and that no FIFO at the pushed
// configuration's names ever holds up its loop or its start.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <catch2/catch.hpp>

#include "agent.hpp"
#include "shared_config.hpp"

using namespace nlb;

namespace {

const std::string kFile = R"({"cluster": {"ip": "10.99.0.1", "vips": ["10.99.0.2"]},
  "host": {"priority": 1, "dedicated_ip": "10.99.0.11"},
  "port_rules": [{"ports": [80, 80], "protocol": "tcp",
                  "load_feedback": {"metric": "connections"}},
                 {"ports": [443, 443], "protocol": "tcp"}]})";

struct DetachedAgent {
    std::filesystem::path dir;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        io.get_executor()};
    int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    EventLog log{LogFormat::text, null_fd};
    std::unique_ptr<Agent> agent;
    std::thread thread;

    explicit DetachedAgent(const std::string& file = kFile) {
        dir = std::filesystem::temp_directory_path() /
              ("nlb-test-agent-push-" + std::to_string(getpid()));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir / "state");
        std::ofstream(dir / "nlb.json") << file;
        AgentOptions options;
        options.config_path = (dir / "nlb.json").string();
        options.socket_path = (dir / "nlb.sock").string();
        options.state_dir = (dir / "state").string();
        options.pin_dir = (dir / "no-pins").string(); // nothing pinned: stays detached
        agent = std::make_unique<Agent>(io, Agent::effective_config(options), options, log);
        agent->start();
        thread = std::thread([this] { io.run(); });
    }
    ~DetachedAgent() {
        work.reset();
        io.stop();
        thread.join();
        agent.reset();
        ::close(null_fd);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }

    // The answer to `request`, or null when none came within `wait`.
    nlohmann::json ask(const nlohmann::json& request, std::chrono::milliseconds wait) {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, (dir / "nlb.sock").c_str(), sizeof(a.sun_path) - 1);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
        const std::string text = request.dump() + "\n";
        REQUIRE(::send(fd, text.data(), text.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(text.size()));
        std::string got;
        const auto until = std::chrono::steady_clock::now() + wait;
        while (got.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0)
                continue;
            char buf[4096];
            const ssize_t n = ::read(fd, buf, sizeof(buf));
            if (n <= 0)
                break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fd);
        if (got.find('\n') == std::string::npos)
            return nullptr;
        return nlohmann::json::parse(got.substr(0, got.find('\n')));
    }
};

// The file's shared part with rule 0 grown to 80-81.
nlohmann::json push_request(const char* command = "push") {
    Config pushed = parse_config(kFile);
    pushed.port_rules[0].last_port = 81;
    pushed.port_rules[0].load_feedback.reset();
    nlohmann::json request = shared_part(pushed);
    request["command"] = command;
    return request;
}

} // namespace

TEST_CASE("agent: a push refused for a key that needs a restart does not say a restart applies "
          "it") {
    DetachedAgent a;
    // The rule with load feedback changes its ports: its load_feedback is this host's own and
    // kept only on a rule of the same ports, so the push would drop it. Refused, nothing kept:
    // a restart runs the file as before, so "restart nlb-agent to apply it" is wrong here.
    const nlohmann::json answer = a.ask(push_request(), std::chrono::seconds(5));
    REQUIRE(answer.is_object());
    CHECK(answer["ok"] == false);
    const std::string error = answer["error"].get<std::string>();
    INFO(error);
    CHECK(error.rfind("push: port_rules[0].load_feedback", 0) == 0);
    CHECK(error.find("restart nlb-agent to apply it") == std::string::npos);
    CHECK(error.find("(nothing changed)") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(a.dir / "state" / "pushed.json"));
}

TEST_CASE("agent: a FIFO at pushed.json.new does not hold up the agent's loop") {
    // Without load feedback on the rule that moves: a push the agent would take.
    DetachedAgent a(R"({"cluster": {"ip": "10.99.0.1", "vips": ["10.99.0.2"]},
      "host": {"priority": 1, "dedicated_ip": "10.99.0.11"},
      "port_rules": [{"ports": [80, 80], "protocol": "tcp"},
                     {"ports": [443, 443], "protocol": "tcp"}]})");
    const auto temp = a.dir / "state" / "pushed.json.new";
    REQUIRE(::mkfifo(temp.c_str(), 0600) == 0);
    // A reader that goes before the agent's write must not end the test binary.
    std::signal(SIGPIPE, SIG_IGN);
    const nlohmann::json answer = a.ask(push_request(), std::chrono::seconds(3));
    if (answer.is_null()) {
        // Blocked in open(): a reader lets it go on, so that the io thread can be joined.
        const int reader = ::open(temp.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        ::close(reader);
        FAIL("the push held up the agent's loop (blocked on the FIFO)");
    }
    CHECK(answer["ok"] == false);
    const std::string error = answer["error"].get<std::string>();
    INFO(error);
    CHECK(error.find("pushed.json.new") != std::string::npos);
    CHECK(error.find("(nothing changed)") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(a.dir / "state" / "pushed.json"));
    // The loop still answers.
    CHECK(a.ask({{"command", "query"}}, std::chrono::seconds(2))["ok"] == true);
}

TEST_CASE("agent: a FIFO at pushed.json stops the start with one line, never blocks it") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("nlb-test-agent-pushed-fifo-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "state");
    std::ofstream(dir / "nlb.json") << kFile;
    REQUIRE(::mkfifo((dir / "state" / "pushed.json").c_str(), 0600) == 0);
    AgentOptions options;
    options.config_path = (dir / "nlb.json").string();
    options.state_dir = (dir / "state").string();
    std::string error;
    std::atomic<bool> done{false};
    std::thread reader([&] {
        try {
            Agent::effective_config(options);
        } catch (const ConfigError& e) {
            error = e.what();
        }
        done = true;
    });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const bool blocked = !done;
    // Unblock a reader stuck in open() (a writer lets it go on), to end the test either way.
    const int writer = ::open((dir / "state" / "pushed.json").c_str(), O_WRONLY | O_NONBLOCK);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (writer >= 0)
        ::close(writer); // the reader then sees the end of the file
    reader.join();
    INFO(error);
    CHECK_FALSE(blocked);
    CHECK(error.find("pushed.json") != std::string::npos);
    CHECK(error.find("remove it") != std::string::npos);
    std::filesystem::remove_all(dir);
}
