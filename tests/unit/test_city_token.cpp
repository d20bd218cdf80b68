// The city's command token (cloud-bridge/src/city_token.cpp): a JWS (EdDSA, Ed25519) bound to one
// site, command and request, carrying the arguments; every way it can be wrong is refused with
// the reason, and the token's text never appears in the reason.
#include <catch2/catch.hpp>

#include <string>

#include "anju/bridge/city_token.hpp"
#include "city_signer.hpp"

using namespace anju::bridge;
using anju::test::CitySigner;
using nlohmann::json;

namespace {
constexpr std::int64_t kNow = 1'796'000'000'000;
}

TEST_CASE("base64url round trip, and what it refuses", "[city][token]") {
  for (const std::string s :
       {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    const auto enc = base64url_encode(s);
    CHECK(enc.find_first_of("+/=") == std::string::npos);
    CHECK(base64url_decode(enc) == s);
  }
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK_FALSE(base64url_decode("a"));     // a length no encoding has
  CHECK_FALSE(base64url_decode("ab+c"));  // standard base64, not url
  CHECK_FALSE(base64url_decode("ab=="));  // no padding in JWS
  CHECK_FALSE(base64url_decode("Zh"));    // leftover bits not zero: not canonical
  CHECK(base64url_decode("Zg") == "f");
}

TEST_CASE("the city's key: Ed25519 PEM only", "[city][token]") {
  CitySigner city;
  auto k = parse_city_key(city.public_pem());
  INFO(k.error);
  REQUIRE(k.key);
  CHECK(parse_city_key("not a key").error.find("not a PEM public key") != std::string::npos);
  // A P-256 key is refused by what it is.
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, ec);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  const std::string ec_pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  CHECK(parse_city_key(ec_pem).error ==
        "not an Ed25519 key (the city signs commands with EdDSA, Ed25519)");
}

TEST_CASE("a city token: verified, bound to its request, refused when anything is off",
          "[city][token]") {
  CitySigner city, impostor;
  const auto key = parse_city_key(city.public_pem()).key;
  REQUIRE(key);
  const json args{{"version", 7}, {"upsert", json::array()}};
  const std::string good = city.token("site-1", "credentials.sync", "req-1", kNow + 60'000, args);

  auto check = [&](const std::string& token, const std::string& site = "site-1",
                   const std::string& cmd = "credentials.sync", const std::string& rid = "req-1",
                   std::int64_t now = kNow) {
    return verify_city_token(token, *key, site, cmd, rid, now);
  };
  const auto ok = check(good);
  INFO(ok.error);
  REQUIRE(ok.claims);
  CHECK(ok.claims->args == args);
  CHECK(ok.claims->exp_ms == kNow + 60'000);

  CHECK(check(good, "site-2").error == "authorization: issued for another site");
  CHECK(check(good, "site-1", "config.apply").error == "authorization: issued for another command");
  CHECK(check(good, "site-1", "credentials.sync", "req-2").error ==
        "authorization: issued for another request_id");
  CHECK(check(good, "site-1", "credentials.sync", "req-1", kNow + 60'001).error ==
        "authorization: expired at " + std::to_string(kNow + 60'000) + " (now " +
            std::to_string(kNow + 60'001) + ")");

  // Signed by someone else; or the city's signature over other arguments.
  const std::string forged =
      impostor.token("site-1", "credentials.sync", "req-1", kNow + 60'000, args);
  CHECK(check(forged).error == "authorization: the signature does not verify with the city's key");
  const std::string other =
      city.token("site-1", "credentials.sync", "req-1", kNow + 60'000, {{"version", 8}});
  const std::string spliced = good.substr(0, good.find('.')) +
                              other.substr(other.find('.'), other.rfind('.') - other.find('.')) +
                              good.substr(good.rfind('.'));
  CHECK(check(spliced).error == "authorization: the signature does not verify with the city's key");

  // The header: only EdDSA, no members this verifier would have to act on.
  const std::string claims = json{
      {"site", "site-1"},
      {"cmd", "credentials.sync"},
      {"request_id", "req-1"},
      {"exp_ms", kNow + 1000}}.dump();
  CHECK(check(city.sign_raw(R"({"alg":"none"})", claims)).error ==
        "authorization: alg must be EdDSA (Ed25519)");
  CHECK(check(city.sign_raw(R"({"alg":"HS256"})", claims)).error ==
        "authorization: alg must be EdDSA (Ed25519)");
  CHECK(check(city.sign_raw(R"({"typ":"x"})", claims)).error ==
        "authorization: the header has no alg");
  CHECK(check(city.sign_raw(R"({"alg":"EdDSA","crit":["exp"]})", claims)).error ==
        "authorization: header member 'crit' is not supported");
  CHECK(check(city.sign_raw(R"({"alg":"EdDSA"})", claims)).claims);

  // The claims: all of them, the right types, nothing unknown.
  CHECK(check(city.sign_raw(R"({"alg":"EdDSA"})",
                            R"({"site":"site-1","cmd":"credentials.sync","request_id":"req-1"})"))
            .error == "authorization: no exp_ms");
  CHECK(check(city.sign_raw(R"({"alg":"EdDSA"})",
                            R"({"site":"site-1","cmd":"credentials.sync","request_id":"req-1",)"
                            R"("exp_ms":1e20})"))
            .error == "authorization: 'exp_ms' must be an integer");
  CHECK(check(city.sign_raw(R"({"alg":"EdDSA"})",
                            R"({"site":"site-1","cmd":"credentials.sync","request_id":"req-1",)"
                            R"("exp_ms":1796000001000,"admin":true})"))
            .error == "authorization: unknown claim 'admin'");
  CHECK(check(city.sign_raw(R"({"alg":"EdDSA"})", "[1,2]")).error ==
        "authorization: the payload is not a JSON object");

  // Not a JWS at all; the reason never repeats the token.
  CHECK(check("abc").error ==
        "authorization: not a JWS in compact form (header.payload.signature)");
  CHECK(check("a.b.c.d").error ==
        "authorization: not a JWS in compact form (header.payload.signature)");
  CHECK(check("a+.b.c").error == "authorization: a part is not base64url");
  CHECK(check(std::string(kMaxCityTokenBytes + 1, 'a')).error ==
        "authorization: larger than 60 KB");
  CHECK(check(forged).error.find(forged.substr(forged.rfind('.') + 1)) == std::string::npos);
}
