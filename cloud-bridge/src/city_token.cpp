// The city's command token: JWS compact, EdDSA (Ed25519). See city_token.hpp.
#include "anju/bridge/city_token.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

namespace anju::bridge {

struct CityKey::Impl {
  EVP_PKEY* pkey = nullptr;
  ~Impl() { EVP_PKEY_free(pkey); }
};

CityKey::CityKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CityKey::~CityKey() = default;

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int value_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3F];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3F];
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;  // no length leaves a single character over
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value_of(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // The bits left over must be zero (a canonical encoding: one token, one text).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

CityKeyResult parse_city_key(std::string_view pem) {
  CityKeyResult r;
  if (pem.size() > 16 * 1024) {
    r.error = "not a public key (larger than 16 KB)";
    return r;
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) {
    r.error = "out of memory";
    return r;
  }
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pkey) {
    r.error = "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)";
    return r;
  }
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pkey);
    r.error = "not an Ed25519 key (the city signs commands with EdDSA, Ed25519)";
    return r;
  }
  auto impl = std::make_unique<CityKey::Impl>();
  impl->pkey = pkey;
  r.key = std::make_shared<const CityKey>(std::move(impl));
  return r;
}

namespace {

bool ed25519_verify(EVP_PKEY* pkey, std::string_view signing_input, std::string_view sig) {
  if (sig.size() != 64) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(signing_input.data()),
                             signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace

CityTokenCheck verify_city_token(std::string_view compact, const CityKey& key,
                                 std::string_view site, std::string_view cmd,
                                 std::string_view request_id, std::int64_t now_ms) {
  CityTokenCheck r;
  auto refuse = [&](std::string why) {
    r.error = "authorization: " + std::move(why);
    return r;
  };
  if (compact.size() > kMaxCityTokenBytes) return refuse("larger than 60 KB");
  const auto dot1 = compact.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : compact.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || compact.find('.', dot2 + 1) != std::string_view::npos)
    return refuse("not a JWS in compact form (header.payload.signature)");
  const auto header_b64 = compact.substr(0, dot1);
  const auto payload_b64 = compact.substr(dot1 + 1, dot2 - dot1 - 1);
  const auto header = base64url_decode(header_b64);
  const auto payload = base64url_decode(payload_b64);
  const auto sig = base64url_decode(compact.substr(dot2 + 1));
  if (!header || !payload || !sig) return refuse("a part is not base64url");

  const auto h = nlohmann::json::parse(*header, nullptr, false);
  if (!h.is_object()) return refuse("the header is not a JSON object");
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "alg") {
      if (!it->is_string() || it->get<std::string>() != "EdDSA")
        return refuse("alg must be EdDSA (Ed25519)");
    } else if (it.key() == "typ" || it.key() == "kid") {
      if (!it->is_string()) return refuse("'" + it.key() + "' must be a string");
    } else {
      // "crit", "jku", "x5u" and the like would ask for things this verifier does not do.
      return refuse("header member '" + it.key().substr(0, 32) + "' is not supported");
    }
  }
  if (!h.contains("alg")) return refuse("the header has no alg");
  // The signature over the first two parts exactly as received.
  if (!ed25519_verify(key.impl().pkey, compact.substr(0, dot2), *sig))
    return refuse("the signature does not verify with the city's key");

  return check_city_token_claims(*payload, site, cmd, request_id, now_ms);
}

CityTokenCheck check_city_token_claims(std::string_view payload, std::string_view site,
                                       std::string_view cmd, std::string_view request_id,
                                       std::int64_t now_ms) {
  CityTokenCheck r;
  auto refuse = [&](std::string why) {
    r.error = "authorization: " + std::move(why);
    return r;
  };
  const auto p = nlohmann::json::parse(payload, nullptr, false);
  if (!p.is_object()) return refuse("the payload is not a JSON object");
  CityTokenClaims c;
  bool have_exp = false;
  for (auto it = p.begin(); it != p.end(); ++it) {
    const std::string& k = it.key();
    if (k == "site" || k == "cmd" || k == "request_id") {
      if (!it->is_string()) return refuse("'" + k + "' must be a string");
      (k == "site" ? c.site : k == "cmd" ? c.cmd : c.request_id) = it->get<std::string>();
    } else if (k == "exp_ms") {
      if (!it->is_number_integer()) return refuse("'exp_ms' must be an integer");
      c.exp_ms = it->get<std::int64_t>();
      have_exp = true;
    } else if (k == "args") {
      if (!it->is_object()) return refuse("'args' must be an object");
      c.args = *it;
    } else {
      return refuse("unknown claim '" + k.substr(0, 32) + "'");
    }
  }
  if (c.site != site) return refuse("issued for another site");
  if (c.cmd != cmd) return refuse("issued for another command");
  if (c.request_id != request_id) return refuse("issued for another request_id");
  if (!have_exp) return refuse("no exp_ms");
  if (now_ms > c.exp_ms)
    return refuse("expired at " + std::to_string(c.exp_ms) + " (now " + std::to_string(now_ms) +
                  ")");
  r.claims = std::move(c);
  return r;
}

}  // namespace anju::bridge
