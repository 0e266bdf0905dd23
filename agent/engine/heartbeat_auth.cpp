#include "heartbeat_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

namespace nlb {
namespace {

constexpr std::size_t kMac = 32;

void hmac(const std::vector<std::uint8_t>& key, std::span<const std::uint8_t> data,
          unsigned char* out) {
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out,
              &len) ||
        len != kMac)
        throw std::runtime_error("heartbeat HMAC: libcrypto failed");
}

} // namespace

void HeartbeatAuth::sign(std::vector<std::uint8_t>& frame) const {
    if (!keyed() || frame.size() < kMac)
        return;
    const auto body = std::span<const std::uint8_t>(frame).first(frame.size() - kMac);
    hmac(key_, body, frame.data() + frame.size() - kMac);
}

bool HeartbeatAuth::verify(std::span<const std::uint8_t> frame, std::size_t length) const {
    if (!keyed() || length < kMac || length > frame.size())
        return false;
    unsigned char expected[kMac];
    hmac(key_, frame.first(length - kMac), expected);
    if (CRYPTO_memcmp(expected, frame.data() + length - kMac, kMac) == 0)
        return true;
    if (rotation_.empty())
        return false;
    hmac(rotation_, frame.first(length - kMac), expected);
    return CRYPTO_memcmp(expected, frame.data() + length - kMac, kMac) == 0;
}

ReplayGuard::Verdict ReplayGuard::check(std::uint8_t priority, std::uint64_t nonce,
                                        std::uint64_t sequence) const {
    if (priority > NLB_MAX_HOSTS)
        return Verdict::replay;
    for (const auto& s : senders_[priority].streams)
        if (s.used && s.nonce == nonce)
            return sequence > s.max_sequence ? Verdict::fresh : Verdict::replay;
    return Verdict::new_nonce;
}

void ReplayGuard::accept(std::uint8_t priority, std::uint64_t nonce, std::uint64_t sequence) {
    if (priority > NLB_MAX_HOSTS)
        return;
    auto& sender = senders_[priority];
    for (auto& s : sender.streams)
        if (s.used && s.nonce == nonce) {
            if (sequence > s.max_sequence)
                s.max_sequence = sequence;
            return;
        }
    sender.streams[sender.next] = {nonce, sequence, true};
    sender.next = (sender.next + 1) % kNonceHistory;
}

bool ReplayWindow::accept(std::uint8_t priority, std::uint64_t nonce, std::uint64_t sequence) {
    if (priority > NLB_MAX_HOSTS)
        return false;
    auto& s = senders_[priority];
    if (!s.used || s.nonce != nonce) {
        s = {nonce, sequence, 1, true};
        return true;
    }
    if (sequence > s.max_sequence) {
        const std::uint64_t shift = sequence - s.max_sequence;
        s.seen = shift >= kWindow ? 0 : s.seen << shift;
        s.seen |= 1;
        s.max_sequence = sequence;
        return true;
    }
    const std::uint64_t age = s.max_sequence - sequence;
    if (age >= kWindow || (s.seen >> age) & 1)
        return false;
    s.seen |= std::uint64_t{1} << age;
    return true;
}

} // namespace nlb
