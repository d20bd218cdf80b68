// The city's side of command tokens, for tests: an Ed25519 key pair and JWS compact signing
// (cloud-bridge/include/anju/bridge/city_token.hpp is the gateway's side).
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "anju/bridge/city_token.hpp"

namespace anju::test {

class CitySigner {
 public:
  CitySigner() {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    EVP_PKEY* k = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &k) != 1)
      throw std::runtime_error("Ed25519 keygen failed");
    EVP_PKEY_CTX_free(ctx);
    key_.reset(k);
  }
  // The public key as PEM (what the gateway is provisioned with).
  std::string public_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key_.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
  }
  // header.payload.signature over the given header and payload texts.
  std::string sign_raw(const std::string& header, const std::string& payload) const {
    const std::string input =
        bridge::base64url_encode(header) + "." + bridge::base64url_encode(payload);
    unsigned char sig[64];
    std::size_t len = sizeof sig;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) != 1)
      throw std::runtime_error("Ed25519 sign failed");
    EVP_MD_CTX_free(ctx);
    return input + "." +
           bridge::base64url_encode(std::string(reinterpret_cast<const char*>(sig), len));
  }
  // A token for one request.
  std::string token(const std::string& site, const std::string& cmd, const std::string& request_id,
                    std::int64_t exp_ms, const nlohmann::json& args) const {
    const nlohmann::json claims{{"site", site},
                                {"cmd", cmd},
                                {"request_id", request_id},
                                {"exp_ms", exp_ms},
                                {"args", args}};
    return sign_raw(R"({"alg":"EdDSA","typ":"anju-cmd+jws"})", claims.dump());
  }

 private:
  struct Free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  std::unique_ptr<EVP_PKEY, Free> key_;
};

}  // namespace anju::test
