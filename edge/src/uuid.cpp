#include "anju/edge/uuid.hpp"

#include <openssl/sha.h>

#include <array>
#include <mutex>
#include <random>

namespace anju::edge {
namespace {

std::string format(const std::array<unsigned char, 16>& b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 0xf]);
  }
  return s;
}

}  // namespace

std::string uuid_v7(std::int64_t unix_ms) {
  // Monotonic within the process: a 12-bit counter in rand_a (RFC 9562 method 1) keeps ids
  // created in the same millisecond ordered; the clock going back reuses the last timestamp.
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  static std::int64_t last_ms = 0;
  static std::uint16_t counter = 0;
  std::uint64_t rnd;
  std::int64_t ms;
  std::uint16_t ctr;
  {
    std::lock_guard lock(mu);
    if (unix_ms > last_ms) {
      last_ms = unix_ms;
      counter = static_cast<std::uint16_t>(rng() & 0x1ff);  // random start, room to count
    } else if (++counter > 0xfff) {
      ++last_ms;  // counter exhausted: borrow the next millisecond
      counter = 0;
    }
    ms = last_ms;
    ctr = counter;
    rnd = rng();
  }
  std::array<unsigned char, 16> b{};
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>((ms >> (8 * (5 - i))) & 0xff);
  b[6] = static_cast<unsigned char>(0x70 | ((ctr >> 8) & 0x0f));
  b[7] = static_cast<unsigned char>(ctr & 0xff);
  for (int i = 8; i < 16; ++i) b[i] = static_cast<unsigned char>((rnd >> (8 * (i - 8))) & 0xff);
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));
  return format(b);
}

std::string uuid_from_name(std::string_view name) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest);
  std::array<unsigned char, 16> b{};
  for (int i = 0; i < 16; ++i) b[i] = digest[i];
  b[6] = static_cast<unsigned char>(0x80 | (b[6] & 0x0f));  // version 8
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));  // variant
  return format(b);
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace anju::edge
