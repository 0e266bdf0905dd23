// Every command's request (docs/control.md), every usage error, help and version.
#include <catch2/catch.hpp>

#include "command_line.hpp"

using namespace nlb;
using namespace nlb::cli;
using nlohmann::json;

namespace {

Invocation parse(std::vector<std::string> args) {
    return parse_command_line(args);
}

json request(std::vector<std::string> args) {
    Invocation inv = parse(std::move(args));
    REQUIRE(inv.action == Action::agent);
    return inv.request;
}

std::string usage_error(std::vector<std::string> args) {
    try {
        parse(std::move(args));
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST_CASE("every agent command's request") {
    CHECK(request({"attach", "eth0"}) == json{{"command", "attach"}, {"interface", "eth0"}});
    CHECK(request({"detach", "eth0"}) == json{{"command", "detach"}, {"interface", "eth0"}});
    CHECK(request({"query"}) == json{{"command", "query"}});
    CHECK(request({"status"}) == json{{"command", "query"}});
    CHECK(request({"prepare-restart"}) == json{{"command", "prepare-restart"}});
    CHECK(request({"reload"}) == json{{"command", "reload"}});
    for (const char* c :
         {"start", "stop", "drainstop", "suspend", "resume", "params", "map", "stats"})
        CHECK(request({c}) == json{{"command", c}});
    CHECK(request({"enable", "80"}) == json{{"command", "enable"}, {"port", 80}});
    CHECK(request({"disable", "all"}) == json{{"command", "disable"}, {"port", "all"}});
    CHECK(request({"drain", "0"}) == json{{"command", "drain"}, {"port", 0}});
    CHECK(request({"drain", "65535"}) == json{{"command", "drain"}, {"port", 65535}});
    CHECK(request({"enable", "80", "--vip", "192.0.2.101"}) ==
          json{{"command", "enable"}, {"port", 80}, {"vip", "192.0.2.101"}});
    CHECK(request({"enable", "--vip=2001:DB8::1", "all"}) ==
          json{{"command", "enable"}, {"port", "all"}, {"vip", "2001:db8::1"}});
    // push and diff name a file, which nlbadm reads (the parser does no I/O).
    for (const char* c : {"push", "diff"}) {
        const Invocation inv = parse({c, "/etc/nlb/nlb.json"});
        CHECK(inv.request == json{{"command", c}});
        CHECK(inv.file == "/etc/nlb/nlb.json");
        CHECK(usage_error({c}) == std::string(c) + ": missing FILE (nlbadm " + c + " FILE)");
    }
}

TEST_CASE("global options: socket and json, before or after the command") {
    Invocation a = parse({"query"});
    CHECK(a.socket == "/run/nlb/nlb.sock");
    CHECK_FALSE(a.json);
    Invocation b = parse({"--socket", "/tmp/h1.sock", "--json", "query"});
    CHECK(b.socket == "/tmp/h1.sock");
    CHECK(b.json);
    Invocation c = parse({"query", "--json", "--socket=/tmp/h2.sock"});
    CHECK(c.socket == "/tmp/h2.sock");
    CHECK(c.json);
    CHECK(c.command == "query");
}

TEST_CASE("remote control: --cluster, --key-file, --host, --timeout, anywhere") {
    Invocation a =
        parse({"--cluster", "10.10.0.100", "--key-file", "/etc/nlb/cluster.key", "drainstop"});
    CHECK(a.action == Action::agent);
    CHECK(a.request == json{{"command", "drainstop"}});
    REQUIRE(a.remote);
    CHECK(a.remote->cluster == *IpAddress::parse("10.10.0.100"));
    CHECK(a.remote->key_file == "/etc/nlb/cluster.key");
    CHECK(a.remote->host == 0);
    CHECK(a.remote->timeout == std::chrono::milliseconds(1000));

    Invocation b = parse({"enable", "80", "--vip", "10.10.0.101", "--host=64", "--timeout", "30000",
                          "--key-file=k", "--json", "--cluster=10.10.0.100"});
    REQUIRE(b.remote);
    CHECK(b.request == json{{"command", "enable"}, {"port", 80}, {"vip", "10.10.0.101"}});
    CHECK(b.remote->host == 64);
    CHECK(b.remote->timeout == std::chrono::milliseconds(30000));
    CHECK(b.json);
    CHECK(parse({"--cluster", "1.2.3.4", "--key-file", "k", "--timeout", "100", "status"})
              .remote->timeout == std::chrono::milliseconds(100));
    CHECK(parse({"--cluster", "1.2.3.4", "--key-file", "k", "--host", "1", "map"}).remote->host ==
          1);
    CHECK_FALSE(parse({"query"}).remote);
    // Help needs no complete remote options.
    CHECK(parse({"--cluster", "1.2.3.4", "query", "--help"}).action == Action::help);
}

TEST_CASE("local commands") {
    Invocation a = parse({"ip2mac", "192.0.2.100"});
    CHECK(a.action == Action::ip2mac);
    CHECK(a.cluster_ip == *IpAddress::parse("192.0.2.100"));
    CHECK(a.mode == ClusterMode::unicast);
    CHECK(parse({"ip2mac", "192.0.2.100", "--mode", "multicast"}).mode == ClusterMode::multicast);
    CHECK(parse({"ip2mac", "--mode=igmp", "192.0.2.100"}).mode == ClusterMode::igmp);
    CHECK(parse({"keygen"}).action == Action::keygen);
    CHECK_FALSE(parse({"keygen"}).out);
    CHECK(parse({"--json", "keygen"}).json);
    CHECK(parse({"keygen", "--out", "/etc/nlb/cluster.key"}).out == "/etc/nlb/cluster.key");
    CHECK(parse({"keygen", "--out=k"}).out == "k");
}

TEST_CASE("help and version") {
    Invocation general = parse({"--help"});
    CHECK(general.action == Action::help);
    CHECK(general.command == "");
    CHECK(parse({"-h"}).action == Action::help);
    Invocation topic = parse({"enable", "--help"});
    CHECK(topic.action == Action::help);
    CHECK(topic.command == "enable");
    CHECK(parse({"status", "--help"}).command == "query");
    // --help wins over a bad argument: the operator is asking how to write it.
    CHECK(parse({"enable", "70000", "--help"}).action == Action::help);
    CHECK(parse({"--version"}).action == Action::version);
    CHECK(parse({"-V"}).action == Action::version);

    std::string text = help_text();
    for (const char* c : {"attach IFACE",
                          "detach IFACE",
                          "query",
                          "status",
                          "start",
                          "stop",
                          "drainstop",
                          "suspend",
                          "resume",
                          "enable PORT|all [--vip VIP]",
                          "disable PORT|all",
                          "drain PORT|all",
                          "params",
                          "map",
                          "stats",
                          "ip2mac IP [--mode unicast|multicast|igmp]",
                          "keygen [--out FILE]",
                          "--socket PATH",
                          "--cluster IP",
                          "--key-file FILE",
                          "--host PRIORITY",
                          "--timeout MS",
                          "--json",
                          "--version",
                          "/run/nlb/nlb.sock"})
        CHECK_THAT(text, Catch::Contains(c));
    CHECK_THAT(text, Catch::Contains("Exit codes:\n  0  success\n  1  the agent refused"));
    CHECK_THAT(text, Catch::Contains("\n  2  usage error"));
    CHECK_THAT(text, Catch::Contains("\n  3  the agent is not reachable"));
    for (const char* c : {"attach", "detach", "query", "start", "stop", "drainstop", "suspend",
                          "resume", "enable", "disable", "drain", "params", "map", "stats",
                          "ip2mac", "keygen", "prepare-restart", "reload"}) {
        INFO(c);
        std::string h = help_text(c);
        CHECK_THAT(h, Catch::StartsWith("Usage: nlbadm "));
        CHECK_THAT(h, Catch::Contains(std::string(" ") + c));
        CHECK(h.back() == '\n');
    }
    CHECK(help_text("status") == help_text("query"));
}

TEST_CASE("every usage error is one line naming what is wrong") {
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    std::vector<Case> cases = {
        {{}, "no command given (see nlbadm --help)"},
        {{"--json"}, "no command given (see nlbadm --help)"},
        {{"frobnicate"}, "unknown command \"frobnicate\" (see nlbadm --help)"},
        {{"--frob", "query"}, "unknown option \"--frob\" (see nlbadm --help)"},
        {{"query", "--frob"}, "query: unknown option \"--frob\" (see nlbadm query --help)"},
        {{"query", "--vip", "1.2.3.4"},
         "query: unknown option \"--vip\" (see nlbadm query --help)"},
        {{"--vip", "1.2.3.4", "enable", "80"}, "unknown option \"--vip\" (see nlbadm --help)"},
        {{"enable", "80", "--mode", "igmp"},
         "enable: unknown option \"--mode\" (see nlbadm enable --help)"},
        {{"query", "extra"}, "query: unexpected argument \"extra\""},
        {{"status", "extra"}, "query: unexpected argument \"extra\""},
        {{"keygen", "32"}, "keygen: unexpected argument \"32\""},
        {{"keygen", "--out"}, "keygen: --out needs a value"},
        {{"keygen", "--out", ""}, "keygen: --out: empty path"},
        {{"keygen", "--out", "a", "--out", "b"}, "keygen: --out given twice"},
        {{"--out", "k", "keygen"}, "unknown option \"--out\" (see nlbadm --help)"},
        {{"query", "--out", "k"}, "query: unknown option \"--out\" (see nlbadm query --help)"},
        {{"attach"}, "attach: missing IFACE (nlbadm attach IFACE)"},
        {{"detach"}, "detach: missing IFACE (nlbadm detach IFACE)"},
        {{"attach", "eth0", "eth1"}, "attach: unexpected argument \"eth1\""},
        {{"attach", "a-very-long-interface-name"},
         "attach: bad interface name \"a-very-long-interface-name\""},
        {{"detach", "eth/0"}, "detach: bad interface name \"eth/0\""},
        {{"enable"}, "enable: missing PORT|all (nlbadm enable PORT|all [--vip VIP])"},
        {{"enable", "70000"}, "enable: bad port \"70000\" (0-65535 or all)"},
        {{"disable", "-1"}, "disable: bad port \"-1\" (0-65535 or all)"},
        {{"drain", "http"}, "drain: bad port \"http\" (0-65535 or all)"},
        {{"drain", "8o"}, "drain: bad port \"8o\" (0-65535 or all)"},
        {{"enable", ""}, "enable: bad port \"\" (0-65535 or all)"},
        {{"enable", "000080"}, "enable: bad port \"000080\" (0-65535 or all)"},
        {{"enable", "ALL"}, "enable: bad port \"ALL\" (0-65535 or all)"},
        {{"enable", "80", "81"}, "enable: unexpected argument \"81\""},
        {{"enable", "80", "--vip"}, "enable: --vip needs a value"},
        {{"enable", "80", "--vip", "x"},
         "enable: bad address \"x\" for --vip (an IPv4 or IPv6 address)"},
        {{"enable", "80", "--vip", "1.2.3.4", "--vip", "1.2.3.5"}, "enable: --vip given twice"},
        {{"ip2mac"}, "ip2mac: missing IP (nlbadm ip2mac IP [--mode unicast|multicast|igmp])"},
        {{"ip2mac", "2001:db8::1"}, "ip2mac: bad cluster IP \"2001:db8::1\" (an IPv4 address)"},
        {{"ip2mac", "1.2.3"}, "ip2mac: bad cluster IP \"1.2.3\" (an IPv4 address)"},
        {{"ip2mac", "1.2.3.4", "--mode", "broadcast"},
         "ip2mac: bad mode \"broadcast\" (unicast, multicast or igmp)"},
        {{"ip2mac", "1.2.3.4", "--mode"}, "ip2mac: --mode needs a value"},
        {{"--socket"}, "--socket needs a value"},
        {{"--socket", "", "query"}, "--socket: empty path"},
        {{"--socket", std::string(108, 'x'), "query"}, "--socket: path longer than 107 bytes"},
        {{"--json=yes", "query"}, "--json takes no value"},
        {{"--cluster", "192.0.2.100", "query"},
         "--cluster needs --key-file FILE (the cluster key)"},
        {{"query", "--key-file", "/etc/nlb/cluster.key"}, "--key-file needs --cluster IP"},
        {{"query", "--host", "2"}, "--host needs --cluster IP"},
        {{"--timeout", "500", "query"}, "--timeout needs --cluster IP"},
        {{"--cluster", "2001:db8::1", "--key-file", "k", "query"},
         "--cluster: bad cluster IP \"2001:db8::1\" (an IPv4 address)"},
        {{"--cluster", "x", "--key-file", "k", "query"},
         "--cluster: bad cluster IP \"x\" (an IPv4 address)"},
        {{"--cluster"}, "--cluster needs a value"},
        {{"--cluster", "1.2.3.4", "--cluster", "1.2.3.5", "query"}, "--cluster given twice"},
        {{"--cluster", "1.2.3.4", "--key-file", "", "query"}, "--key-file: empty path"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "--host", "0", "query"},
         "--host: bad priority \"0\" (1-64)"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "--host", "65", "query"},
         "--host: bad priority \"65\" (1-64)"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "--host=two", "query"},
         "--host: bad priority \"two\" (1-64)"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "--timeout", "99", "query"},
         "--timeout: bad value \"99\" (100-30000 ms)"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "--timeout", "30001", "query"},
         "--timeout: bad value \"30001\" (100-30000 ms)"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "--timeout", "1s", "query"},
         "--timeout: bad value \"1s\" (100-30000 ms)"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "attach", "eth0"},
         "attach: local only (run nlbadm attach on the host, without --cluster)"},
        {{"detach", "eth0", "--cluster", "1.2.3.4", "--key-file", "k"},
         "detach: local only (run nlbadm detach on the host, without --cluster)"},
        {{"--cluster", "10.10.0.100", "--key-file", "k", "prepare-restart"},
         "prepare-restart: local only (run nlbadm prepare-restart on the host, without "
         "--cluster)"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "keygen"},
         "keygen: needs no agent, so no --cluster"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "ip2mac", "1.2.3.4"},
         "ip2mac: needs no agent, so no --cluster"},
        {{"--socket", "/tmp/s", "--cluster", "1.2.3.4", "--key-file", "k", "query"},
         "--socket and --cluster: the local agent or the cluster's hosts, not both"},
        {{"--cluster", "1.2.3.4", "--key-file", "k", "enable", "70000"},
         "enable: bad port \"70000\" (0-65535 or all)"},
    };
    for (const auto& c : cases) {
        std::string joined;
        for (const auto& a : c.args)
            joined += a + " ";
        INFO("nlbadm " << joined);
        std::string message = usage_error(c.args);
        CHECK(message == c.message);
        CHECK(message.find('\n') == std::string::npos);
    }
}
