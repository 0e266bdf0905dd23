// The key file format (the agent's: 64..128 hex digits, whitespace ignored) and the key
// derivation that keeps heartbeat MACs and remote-control MACs apart.
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "cluster_key.hpp"

using namespace nlb::remote;

namespace {

const std::string kHex64(64, 'a');

// A key file as an operator should have it: mode 0600 whatever the umask.
std::string temp_file(const std::string& content, mode_t mode = 0600) {
    std::string path = "/tmp/nlb-test-remote-key-" + std::to_string(::getpid());
    std::ofstream(path) << content;
    ::chmod(path.c_str(), mode);
    return path;
}

} // namespace

TEST_CASE("key text: 64 to 128 hex digits, any case, whitespace anywhere ignored") {
    auto k = parse_key(" \n" + kHex64 + "\n");
    REQUIRE(k);
    CHECK(k->size() == 32);
    CHECK((*k)[0] == 0xaa);
    CHECK(parse_key(std::string(128, 'F'))->size() == 64);
    CHECK(parse_key("0123456789abcdef0123456789ABCDEF\n0123456789abcdef0123456789abcdef"));
    CHECK_FALSE(parse_key(std::string(62, 'a')));
    CHECK_FALSE(parse_key(std::string(130, 'a')));
    CHECK_FALSE(parse_key(std::string(65, 'a')));
    CHECK_FALSE(parse_key(std::string(63, 'a') + "g"));
    CHECK_FALSE(parse_key(""));
}

TEST_CASE("key files: errors name the file") {
    std::string good = temp_file(kHex64 + "\n");
    CHECK(read_key_file(good).size() == 32);
    std::string bad = temp_file("not a key\n");
    CHECK_THROWS_WITH(read_key_file(bad),
                      bad + ": expected 64 to 128 hex digits (as nlbadm keygen makes)");
    std::string huge = temp_file(std::string(5000, 'a'));
    CHECK_THROWS_WITH(read_key_file(huge), Catch::Contains("expected 64 to 128 hex digits"));
    ::unlink(good.c_str());
    CHECK_THROWS_WITH(read_key_file("/nonexistent/key"),
                      "/nonexistent/key: No such file or directory");
}

TEST_CASE("key files readable or writable by group or others are refused, naming the chmod") {
    // Root reads any file whatever its mode: what is checked is the mode, not access.
    for (mode_t mode : {0644, 0640, 0604, 0444}) {
        CAPTURE(mode);
        std::string path = temp_file(kHex64 + "\n", mode);
        CHECK_THROWS_WITH(read_key_file(path),
                          path + " is readable by group or others: chmod 600 " + path);
    }
    for (mode_t mode : {0620, 0602, 0622}) {
        CAPTURE(mode);
        std::string path = temp_file(kHex64 + "\n", mode);
        CHECK_THROWS_WITH(read_key_file(path),
                          path + " is writable by group or others: chmod 600 " + path);
    }
    // Owner-only modes pass, and so does execute for others (it gives nothing on a file).
    for (mode_t mode : {0600, 0400, 0700, 0601}) {
        CAPTURE(mode);
        CHECK(read_key_file(temp_file(kHex64 + "\n", mode)).size() == 32);
    }
    // The mode is checked first: a too-open file is refused even when it holds no key.
    std::string open_junk = temp_file("junk", 0666);
    CHECK_THROWS_WITH(read_key_file(open_junk), Catch::Contains("chmod 600"));
    ::unlink(open_junk.c_str());
}

TEST_CASE("the remote key is derived: a MAC under the cluster key itself does not verify") {
    auto key = *parse_key(kHex64);
    ClusterKey remote(key);
    const std::uint8_t data[] = {'N', 'L', 'B', 'H', 1, 2, 3};
    auto mac = remote.mac(data);
    CHECK(remote.verify(data, mac));

    unsigned char raw[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, sizeof(data), raw, &len);
    CHECK_FALSE(remote.verify(data, std::span<const std::uint8_t>(raw, 32)));
    CHECK_FALSE(std::equal(mac.begin(), mac.end(), raw));

    mac[31] ^= 1;
    CHECK_FALSE(remote.verify(data, mac));
    CHECK_FALSE(remote.verify(data, std::span<const std::uint8_t>(mac).first(31)));
    auto other = key;
    other[0] ^= 1;
    CHECK_FALSE(ClusterKey(other).verify(data, remote.mac(data)));
}
