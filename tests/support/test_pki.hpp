// Test certificates made with libcrypto (OpenSSL 3): keys, CAs, certificates signed by them, and
// certificates issued for a certificate request, as a city's CA would. Header-only, for the
// integration tests.
#pragma once

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace anju::it::pki {

struct Free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  void operator()(X509* x) const { X509_free(x); }
  void operator()(X509_REQ* r) const { X509_REQ_free(r); }
  void operator()(BIO* b) const { BIO_free(b); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Req = std::unique_ptr<X509_REQ, Free>;

inline Key new_key() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) throw std::runtime_error("EVP_EC_gen failed");
  return k;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

struct CertSpec {
  std::string cn;  // subject CN (ignored when `subject` is given)
  const X509_NAME* subject = nullptr;
  EVP_PKEY* key = nullptr;         // the certified public key
  X509* issuer = nullptr;          // null: self-signed
  EVP_PKEY* issuer_key = nullptr;  // null: `key` (self-signed)
  bool ca = false;
  std::string san;                            // e.g. "IP:127.0.0.1"; empty: none
  std::string eku = "serverAuth,clientAuth";  // leaf certificates; empty: no EKU extension
  long not_before_s = -86400;                 // from now
  long not_after_s = 365L * 86400;
};

inline Cert make_cert(const CertSpec& s) {
  static long serial = 5000;
  Cert c(X509_new());
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), s.not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), s.not_after_s);
  X509_set_pubkey(c.get(), s.key);
  if (s.subject != nullptr) {
    X509_set_subject_name(c.get(), s.subject);
  } else {
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(s.cn.c_str()), -1, -1, 0);
  }
  X509* signer = s.issuer ? s.issuer : c.get();
  X509_set_issuer_name(c.get(), X509_get_subject_name(signer));
  add_ext(c.get(), signer, NID_basic_constraints, s.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(c.get(), signer, NID_key_usage,
          s.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(c.get(), signer, NID_subject_key_identifier, "hash");
  if (!s.ca && !s.eku.empty()) add_ext(c.get(), signer, NID_ext_key_usage, s.eku);
  if (!s.san.empty()) add_ext(c.get(), signer, NID_subject_alt_name, s.san);
  if (X509_sign(c.get(), s.issuer_key ? s.issuer_key : s.key, EVP_sha256()) == 0)
    throw std::runtime_error("X509_sign failed");
  return c;
}

// A CA: self-signed, valid from yesterday for ten years.
inline Cert make_ca(const std::string& cn, EVP_PKEY* key) {
  CertSpec s;
  s.cn = cn;
  s.key = key;
  s.ca = true;
  s.not_after_s = 3650L * 86400;
  return make_cert(s);
}

inline Req read_request(const std::string& pem) {
  std::unique_ptr<BIO, Free> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Req(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr));
}

inline Key read_private_key(const std::string& pem) {
  std::unique_ptr<BIO, Free> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Key(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
}

// What a CA issues for `req`: its subject and public key, signed by `ca`.
inline Cert issue(X509_REQ* req, X509* ca, EVP_PKEY* ca_key, CertSpec s = {}) {
  s.subject = X509_REQ_get_subject_name(req);
  s.key = X509_REQ_get0_pubkey(req);
  s.issuer = ca;
  s.issuer_key = ca_key;
  return make_cert(s);
}

inline void write_cert(const std::filesystem::path& p, X509* c) {
  FILE* f = std::fopen(p.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + p.string());
  PEM_write_X509(f, c);
  std::fclose(f);
  std::filesystem::permissions(
      p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
             std::filesystem::perms::group_read | std::filesystem::perms::others_read);
}

inline void write_key(const std::filesystem::path& p, EVP_PKEY* k, std::filesystem::perms mode) {
  FILE* f = std::fopen(p.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + p.string());
  PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  std::filesystem::permissions(p, mode);
}

// One subject field of a name ("CN", "O", "L", "serialNumber"), "" when absent.
inline std::string name_field(const X509_NAME* name, const char* field) {
  const int nid = OBJ_txt2nid(field);
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

// "2026-01-31 12:00:00 UTC", as `anju provision cert` prints dates.
inline std::string utc(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

// SHA-256 of the request's DER, "AB:CD:...".
inline std::string request_sha256(X509_REQ* req) {
  unsigned char* der = nullptr;
  const int n = i2d_X509_REQ(req, &der);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(der, static_cast<std::size_t>(n), md, &len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i) out += ':';
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

}  // namespace anju::it::pki
