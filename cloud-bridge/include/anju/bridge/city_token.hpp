// The city's authorisation token for the commands that change configuration or release evidence
// (config.apply, rules.update, credentials.sync, evidence.request): a JWS in compact serialisation
// (RFC 7515), signed with the city's Ed25519 key ("alg": "EdDSA", RFC 8037). The gateway holds the
// city's public key (uplink.command_key_file) and nothing that could sign.
//
// The token's payload (claims) binds it to one request, and carries the arguments, so that what
// is applied is exactly what was signed (no canonical JSON is needed on either side):
//   {"site": "<site id>", "cmd": "credentials.sync", "request_id": "<the request's>",
//    "exp_ms": <ms since the epoch: refused after>, "args": {...}}
// A token for another site, another command or another request id is refused, and so is one
// past exp_ms. Unknown claims are refused (a typo must not pass).
//
// Pure: no clock (now_ms is given), no I/O; OpenSSL's libcrypto for the signature.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace anju::bridge {

inline constexpr std::size_t kMaxCityTokenBytes = 60 * 1024;

// The city's public key, parsed once.
class CityKey {
 public:
  ~CityKey();
  CityKey(const CityKey&) = delete;
  CityKey& operator=(const CityKey&) = delete;
  struct Impl;
  explicit CityKey(std::unique_ptr<Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

struct CityKeyResult {
  std::shared_ptr<const CityKey> key;
  std::string error;
};
// An Ed25519 public key in PEM ("-----BEGIN PUBLIC KEY-----"); anything else is an error.
CityKeyResult parse_city_key(std::string_view pem);

struct CityTokenClaims {
  std::string site, cmd, request_id;
  std::int64_t exp_ms = 0;
  nlohmann::json args = nlohmann::json::object();
};

struct CityTokenCheck {
  std::optional<CityTokenClaims> claims;
  std::string error;  // non-empty when refused: what is wrong, never the token itself
};

// Verifies the signature and reads the claims; then checks them against the request they came
// with (site, command name, request id) and the time.
CityTokenCheck verify_city_token(std::string_view compact, const CityKey& key,
                                 std::string_view site, std::string_view cmd,
                                 std::string_view request_id, std::int64_t now_ms);

// The claims alone (the token's decoded payload), checked like verify_city_token does after the
// signature. For the fuzz target and for tests; the daemon calls verify_city_token.
CityTokenCheck check_city_token_claims(std::string_view payload, std::string_view site,
                                       std::string_view cmd, std::string_view request_id,
                                       std::int64_t now_ms);

// Base64url without padding (RFC 4648 §5), as JWS uses it. decode: nullopt on a bad character or
// length.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace anju::bridge
