// The three kinds of check. Each is an object kept alive by the handlers it has pending
// (shared_from_this) and finishes once: by its own result or by the deadline, whichever
// comes first.
//
// exec: fork + execve, and the child's exit is awaited through a pidfd (pidfd_open, Linux
// 5.3) registered with the io_context like any socket. Not SIGCHLD: a signal handler is
// process-wide state (any other child, a library's, would be reaped or missed by it), and
// killing a PID learnt from a signal can hit a reused PID; a pidfd names exactly our child,
// and until we reap it its PID, and the process group it leads, cannot be reused, so the
// SIGKILL at the deadline (to the group, for what the command started) never hits a
// stranger. fork rather than posix_spawn: the child must drop to the probe's user, which
// posix_spawn cannot do.
#include "probe_check.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "probe_cgroup.hpp"

namespace nlb {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

const char* to_string(CheckResult::Outcome outcome) {
    switch (outcome) {
    case CheckResult::Outcome::passed:
        return "passed";
    case CheckResult::Outcome::failed:
        return "failed";
    case CheckResult::Outcome::timeout:
        return "timeout";
    }
    return "?";
}

ProbeTarget resolve_probe(const ProbeConfig& probe, const IpAddress& dedicated_ip,
                          const std::string& key) {
    ProbeTarget t;
    t.type = probe.type;
    t.timeout = std::chrono::milliseconds(probe.timeout_ms);
    if (probe.type != ProbeType::exec) {
        const IpAddress& a = probe.address ? *probe.address : dedicated_ip;
        t.endpoint = asio::ip::tcp::endpoint(asio::ip::make_address(a.to_string()), probe.port);
        t.http_host = probe.http_host;
        t.http_path = probe.http_path;
        t.expect_status = probe.expect_status;
        return t;
    }
    t.command = probe.command;
    std::array<char, 4096> buf{};
    passwd pw{};
    passwd* found = nullptr;
    const int rc = getpwnam_r(probe.user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (rc != 0 || !found)
        throw std::runtime_error(
            key + ".user: " +
            (rc != 0 ? std::string(std::strerror(rc)) : "no such user \"" + probe.user + "\""));
    t.uid = pw.pw_uid;
    t.gid = pw.pw_gid;
    return t;
}

namespace {

class CheckBase : public ProbeCheck, public std::enable_shared_from_this<CheckBase> {
  public:
    CheckBase(asio::io_context& io, const ProbeTarget& target, Done done)
        : io_(io), target_(target), done_(std::move(done)), timer_(io), started_(Clock::now()) {}

    virtual void begin() = 0;

  protected:
    void arm_deadline() {
        timer_.expires_after(target_.timeout);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec)
                self->on_deadline();
        });
    }
    virtual void on_deadline() {
        finish(CheckResult::Outcome::timeout,
               "no answer within " + std::to_string(target_.timeout.count()) + " ms");
    }
    virtual void stop() {}

    bool finished() const { return finished_; }
    void finish(CheckResult::Outcome outcome, std::string detail) {
        if (finished_)
            return;
        finished_ = true;
        timer_.cancel();
        stop();
        CheckResult r;
        r.outcome = outcome;
        r.detail = std::move(detail);
        r.output = std::move(output_);
        r.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_);
        auto done = std::move(done_);
        done_ = nullptr;
        if (done)
            done(r);
    }

    void cancel() override {
        finished_ = true;
        done_ = nullptr;
        timer_.cancel();
        stop();
    }

    void expire() override {
        if (!finished_)
            on_deadline();
    }

    asio::io_context& io_;
    ProbeTarget target_;
    std::string output_;

  private:
    Done done_;
    asio::steady_timer timer_;
    Clock::time_point started_;
    bool finished_ = false;
};

// tcp: a connection is accepted. http: also a status line with the expected code.
class SocketCheck : public CheckBase {
  public:
    using CheckBase::CheckBase;

    void begin() override {
        arm_deadline();
        socket_.async_connect(
            target_.endpoint, [self = shared()](const boost::system::error_code& ec) {
                if (self->finished())
                    return;
                if (ec)
                    return self->finish(CheckResult::Outcome::failed, ec.message());
                if (self->target_.type == ProbeType::tcp)
                    return self->finish(CheckResult::Outcome::passed, "connected");
                self->send_request();
            });
    }

  private:
    std::shared_ptr<SocketCheck> shared() {
        return std::static_pointer_cast<SocketCheck>(shared_from_this());
    }

    void stop() override {
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

    void send_request() {
        // HTTP/1.0: the server closes after one answer; nothing to parse but the status line.
        request_ = "GET " + target_.http_path + " HTTP/1.0\r\nHost: " + target_.http_host +
                   "\r\nUser-Agent: nlb-agent\r\nConnection: close\r\n\r\n";
        asio::async_write(socket_, asio::buffer(request_),
                          [self = shared()](const boost::system::error_code& ec, std::size_t) {
                              if (self->finished())
                                  return;
                              if (ec)
                                  return self->finish(CheckResult::Outcome::failed, ec.message());
                              self->read_status();
                          });
    }

    void read_status() {
        socket_.async_read_some(
            asio::buffer(buf_.data() + have_, buf_.size() - have_),
            [self = shared()](const boost::system::error_code& ec, std::size_t n) {
                if (self->finished())
                    return;
                self->have_ += n;
                const std::string_view got(self->buf_.data(), self->have_);
                if (const auto eol = got.find('\n'); eol != std::string_view::npos)
                    return self->judge(got.substr(0, eol));
                if (ec)
                    return self->finish(CheckResult::Outcome::failed,
                                        "no status line: " + ec.message());
                if (self->have_ == self->buf_.size())
                    return self->finish(CheckResult::Outcome::failed, "status line too long");
                self->read_status();
            });
    }

    void judge(std::string_view line) {
        // "HTTP/1.1 200 OK": the code is three digits and ends there (RFC 9112 status-line),
        // not the start of "2001" or "200OK".
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        auto digit = [&](std::size_t i) {
            return std::isdigit(static_cast<unsigned char>(line[i])) != 0;
        };
        const bool shaped = line.size() >= 12 && line.substr(0, 7) == "HTTP/1." && digit(7) &&
                            line[8] == ' ' && digit(9) && digit(10) && digit(11) &&
                            (line.size() == 12 || line[12] == ' ');
        if (!shaped)
            return finish(CheckResult::Outcome::failed, "not an HTTP/1.x status line");
        const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        finish(status == target_.expect_status ? CheckResult::Outcome::passed
                                               : CheckResult::Outcome::failed,
               "status " + std::to_string(status));
    }

    asio::ip::tcp::socket socket_{io_};
    std::string request_;
    std::array<char, 512> buf_{};
    std::size_t have_ = 0;
};

int pidfd_open(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

class ExecCheck : public CheckBase {
  public:
    using CheckBase::CheckBase;

    ~ExecCheck() override { kill_and_reap(); }

    void begin() override {
        // Everything the child needs is built before fork: after it, only async-signal-safe
        // calls.
        std::vector<char*> argv;
        for (auto& a : target_.command)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        static char path_env[] =
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        char* envp[] = {path_env, nullptr};
        const uid_t uid = target_.uid;
        const gid_t gid = target_.gid;
        const bool change_user = uid != ::geteuid() || gid != ::getegid();
        int out[2] = {-1, -1};
        if (target_.capture_output && ::pipe2(out, O_CLOEXEC) != 0)
            return io_later(CheckResult::Outcome::failed,
                            std::string("pipe: ") + std::strerror(errno));
        const pid_t agent = ::getpid();
        cgroup_ = ProbeCgroup::create(); // none: the process group is all that is killed
        const int cgroup_procs = cgroup_ ? cgroup_->procs_fd() : -1;
        const pid_t pid = ::fork();
        if (pid < 0) {
            const int e = errno;
            close_pipe(out);
            cgroup_.reset();
            return io_later(CheckResult::Outcome::failed, std::string("fork: ") + std::strerror(e));
        }
        if (pid == 0)
            child(argv.data(), envp, change_user, uid, gid, out[1], agent, cgroup_procs);
        if (out[1] >= 0)
            ::close(out[1]);
        if (out[0] >= 0) {
            ::fcntl(out[0], F_SETFL, O_NONBLOCK);
            out_.assign(out[0]);
            drain();
        }
        ::setpgid(pid, pid); // also in the child: whichever runs first
        contained_ = cgroup_ && cgroup_->adopt(pid); // likewise
        pid_ = pid;
        const int fd = pidfd_open(pid);
        if (fd < 0) {
            const int e = errno;
            kill_and_reap();
            return io_later(CheckResult::Outcome::failed,
                            std::string("pidfd_open: ") + std::strerror(e));
        }
        pidfd_.assign(fd);
        arm_deadline();
        wait_exit();
    }

  private:
    static void close_pipe(int (&fds)[2]) {
        for (int fd : fds)
            if (fd >= 0)
                ::close(fd);
    }

    [[noreturn]] static void child(char** argv, char** envp, bool change_user, uid_t uid, gid_t gid,
                                   int out, pid_t agent, int cgroup_procs) {
        ::setpgid(0, 0);
        // Into its cgroup before anything it starts can escape it; as root, before the
        // change of user (the file is root's).
        if (cgroup_procs >= 0) {
            [[maybe_unused]] const auto n = ::write(cgroup_procs, "0", 1);
        }
        sigset_t all;
        sigemptyset(&all);
        ::sigprocmask(SIG_SETMASK, &all, nullptr);
        for (int s : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD})
            ::signal(s, SIG_DFL);
        const int null = ::open("/dev/null", O_RDWR);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(null, 2);
        }
        if (out >= 0)
            ::dup2(out, 1); // a metric's number: the agent keeps the start, drains the rest
        // The agent's sockets, BPF maps and pidfds stay with the agent.
        if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
            for (int fd = 3; fd < 65536; ++fd)
                ::close(fd);
        if (change_user && (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0))
            ::_exit(126);
        // Dies with the agent rather than outlive it: asked for after the change of user,
        // which clears it (prctl(2)), and the agent's death until now checked by hand.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != agent)
            ::_exit(126);
        ::execve(argv[0], argv, envp);
        ::_exit(127);
    }

    // A result decided before anything asynchronous started still arrives through the loop,
    // like every other: the caller is never called back from within start().
    void io_later(CheckResult::Outcome outcome, std::string detail) {
        asio::post(io_, [self = shared(), outcome, detail = std::move(detail)]() mutable {
            self->finish(outcome, std::move(detail));
        });
    }

    std::shared_ptr<ExecCheck> shared() {
        return std::static_pointer_cast<ExecCheck>(shared_from_this());
    }

    void wait_exit() {
        pidfd_.async_wait(asio::posix::descriptor_base::wait_read,
                          [self = shared()](const boost::system::error_code& ec) {
                              if (ec == asio::error::operation_aborted)
                                  return;
                              self->reap();
                          });
    }

    void reap() {
        if (pid_ <= 0)
            return;
        // Exited (a zombie): its PID and group are still ours. Whatever it left running in
        // its group, or anywhere in its cgroup, goes with it.
        ::kill(-pid_, SIGKILL);
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == 0)
            return wait_exit(); // not yet (spurious readiness)
        pid_ = -1;
        cgroup_.reset();
        boost::system::error_code ignored;
        pidfd_.close(ignored);
        read_output();
        if (r < 0)
            return finish(CheckResult::Outcome::failed,
                          std::string("waitpid: ") + std::strerror(errno));
        if (WIFEXITED(status))
            return finish(WEXITSTATUS(status) == 0 ? CheckResult::Outcome::passed
                                                   : CheckResult::Outcome::failed,
                          "exit " + std::to_string(WEXITSTATUS(status)));
        finish(CheckResult::Outcome::failed,
               std::string("killed by signal ") + std::to_string(WTERMSIG(status)));
    }

    void on_deadline() override {
        // The verdict counts a timeout now; the child is reaped once the kill lands.
        if (pid_ > 0) {
            ::kill(-pid_, SIGKILL);
            kill_refused_ = ::kill(pid_, SIGKILL) != 0 && errno == EPERM && !contained_;
            if (cgroup_)
                cgroup_->kill(); // needs no permission over the processes themselves
        }
        CheckBase::on_deadline();
    }

    bool lingering() const override { return kill_refused_ && pid_ > 0; }

    void stop() override {}

    // The command's output is read as it comes, its first kOutputKept bytes kept and the rest
    // dropped: left in the pipe, more than a pipe's buffer (64 KB) would block the command
    // until its timeout (a status page fetched whole, say).
    static constexpr std::size_t kOutputKept = 256;

    void drain() {
        out_.async_read_some(asio::buffer(chunk_),
                             [self = shared()](const boost::system::error_code& ec, std::size_t n) {
                                 if (ec) // the end (every writer gone), or closed below
                                     return;
                                 self->keep(n);
                                 self->drain();
                             });
    }

    void keep(std::size_t n) {
        const std::size_t room = kOutputKept - std::min(kOutputKept, output_.size());
        output_.append(chunk_.data(), std::min(n, room));
    }

    // What is left in the pipe once the command exited, bounded (a pipe's buffer, or what
    // anything it left running writes meanwhile): read here, not by the loop, so that the
    // result has it.
    void read_output() {
        if (!out_.is_open())
            return;
        for (int i = 0; i < 16; ++i) {
            const ssize_t n = ::read(out_.native_handle(), chunk_.data(), chunk_.size());
            if (n <= 0)
                break;
            keep(static_cast<std::size_t>(n));
        }
        boost::system::error_code ignored;
        out_.close(ignored);
    }

    void cancel() override {
        CheckBase::cancel();
        boost::system::error_code ignored;
        pidfd_.cancel(ignored);
        kill_and_reap();
    }

    // Blocking, but only after SIGKILL: the child cannot delay it past its own teardown. A
    // kill refused (an agent without CAP_KILL, the child already another user's) must not
    // leave the loop waiting for the command to end by itself: a thread of its own waits for
    // it then, since nothing else will (the loop's wait went with this check), and a child
    // never waited for stays a zombie for the agent's life.
    void kill_and_reap() {
        if (pid_ <= 0)
            return;
        const pid_t pid = pid_;
        pid_ = -1;
        boost::system::error_code ignored;
        pidfd_.close(ignored);
        ::kill(-pid, SIGKILL);
        if (cgroup_)
            cgroup_->kill();
        const bool killed = ::kill(pid, SIGKILL) == 0 || errno == ESRCH || contained_;
        if (killed) {
            reap_blocking(pid);
            return;
        }
        if (reap_now(pid))
            return;
        try {
            std::thread([pid] { reap_blocking(pid); }).detach();
        } catch (const std::system_error&) {
            // No thread to be had: the look above was all this child gets.
        }
    }

    static void reap_blocking(pid_t pid) {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }

    // Whether it is reaped: it had exited, or it is not ours to wait for (ECHILD).
    static bool reap_now(pid_t pid) {
        int status = 0;
        pid_t r = 0;
        while ((r = ::waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
        }
        return r != 0;
    }

    asio::posix::stream_descriptor pidfd_{io_};
    pid_t pid_ = -1;
    std::unique_ptr<ProbeCgroup> cgroup_;     // none: only the process group is killed
    bool contained_ = false;                  // the command is in cgroup_: its kill reaches it
    bool kill_refused_ = false;               // at the deadline: the command runs on until it ends
    asio::posix::stream_descriptor out_{io_}; // capture_output: the command's standard output
    std::array<char, 4096> chunk_{};
};

} // namespace

std::shared_ptr<ProbeCheck> ProbeCheck::start(asio::io_context& io, const ProbeTarget& target,
                                              Done done) {
    std::shared_ptr<CheckBase> check;
    if (target.type == ProbeType::exec)
        check = std::make_shared<ExecCheck>(io, target, std::move(done));
    else
        check = std::make_shared<SocketCheck>(io, target, std::move(done));
    check->begin();
    return check;
}

} // namespace nlb
