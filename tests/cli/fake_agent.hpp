// A stand-in for nlb-agent's control socket: a thread that accepts one connection, reads one
// request line and answers as told. Lets the tests drive the real nlbadm over the real wire.
#pragma once

#include <string>
#include <thread>

namespace nlb::cli::test {

class FakeAgent {
  public:
    enum class Behaviour {
        answer,       // write `response` + "\n" in two pieces, keep the connection open
        close_silent, // close the connection without answering
        never_answer, // read the request, answer nothing until the client gives up
    };

    explicit FakeAgent(std::string response, Behaviour behaviour = Behaviour::answer);
    ~FakeAgent();
    FakeAgent(const FakeAgent&) = delete;
    FakeAgent& operator=(const FakeAgent&) = delete;

    const std::string& path() const { return path_; }
    // Everything the client sent, once the exchange is over (joins the thread).
    std::string received();

  private:
    void serve(int listener);

    std::string dir_;
    std::string path_;
    std::string response_;
    Behaviour behaviour_;
    std::string received_;
    std::thread thread_;
};

} // namespace nlb::cli::test
