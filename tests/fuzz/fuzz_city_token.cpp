// Fuzz target: the city's command token (cloud-bridge/city_token.cpp), which comes from the city
// broker inside a command's `authorization`. The input is tried as a whole token against a fixed
// key (base64url, the header, the signature check), and as the claims alone (a fuzzer cannot sign,
// so the claims would otherwise never be reached). An accepted result is bound to its request.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anju/bridge/city_token.hpp"

namespace {

// A throwaway Ed25519 public key: nothing signs with it.
constexpr std::string_view kPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEANjh7cBQr3whdznFWpflMZr0JMcdV2Y0SXE5Ynxhrqco=\n"
    "-----END PUBLIC KEY-----\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto key = anju::bridge::parse_city_key(kPem).key;
  if (!key) __builtin_trap();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::int64_t now = 1'796'000'000'000;
  const auto t =
      anju::bridge::verify_city_token(in, *key, "site-1", "credentials.sync", "r-1", now);
  if (t.claims || t.error.empty()) __builtin_trap();  // nothing signed it
  const auto c =
      anju::bridge::check_city_token_claims(in, "site-1", "credentials.sync", "r-1", now);
  if (c.claims) {
    if (c.claims->site != "site-1" || c.claims->cmd != "credentials.sync" ||
        c.claims->request_id != "r-1" || c.claims->exp_ms < now || !c.claims->args.is_object())
      __builtin_trap();
  } else if (c.error.empty()) {
    __builtin_trap();
  }
  const auto b = anju::bridge::base64url_decode(in);
  if (b && anju::bridge::base64url_encode(*b) != in) __builtin_trap();  // canonical both ways
  return 0;
}
