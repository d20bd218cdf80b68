#include "anju/firmware/users.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "anju/edge/files.hpp"

namespace anju::firmware {
namespace {
using nlohmann::json;

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kMaxUsersFileBytes = 1024 * 1024;
constexpr std::size_t kMaxPasswordBytes = 1024;

std::string b64(const unsigned char* data, std::size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  const int len =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::optional<std::string> unb64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0 || s.size() > 1024) return std::nullopt;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '='))
      return std::nullopt;
  std::string out(s.size() / 4 * 3, '\0');
  const int len =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (len < 0) return std::nullopt;
  std::size_t n = static_cast<std::size_t>(len);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (s.ends_with("=="))
    n -= 2;
  else if (s.ends_with("="))
    n -= 1;
  out.resize(n);
  return out;
}

struct ParsedHash {
  KdfParams params;
  std::string salt;
  std::string key;
};

std::optional<int> small_int(std::string_view s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<ParsedHash> parse_hash(std::string_view s, std::string* why) {
  auto fail = [why](const char* m) -> std::optional<ParsedHash> {
    if (why) *why = m;
    return std::nullopt;
  };
  constexpr std::string_view kPrefix = "$scrypt$";
  if (!s.starts_with(kPrefix)) return fail("not a $scrypt$ password hash");
  s.remove_prefix(kPrefix.size());
  auto d1 = s.find('$');
  if (d1 == std::string_view::npos) return fail("malformed password hash");
  std::string_view params = s.substr(0, d1);
  std::string_view rest = s.substr(d1 + 1);
  auto d2 = rest.find('$');
  if (d2 == std::string_view::npos) return fail("malformed password hash");
  ParsedHash h;
  int seen = 0;
  while (!params.empty()) {
    auto comma = params.find(',');
    std::string_view kv = params.substr(0, comma);
    params = comma == std::string_view::npos ? std::string_view{} : params.substr(comma + 1);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) return fail("malformed scrypt parameters");
    auto v = small_int(kv.substr(eq + 1));
    if (!v) return fail("malformed scrypt parameters");
    std::string_view k = kv.substr(0, eq);
    if (k == "ln")
      h.params.log2_n = *v, seen |= 1;
    else if (k == "r")
      h.params.r = *v, seen |= 2;
    else if (k == "p")
      h.params.p = *v, seen |= 4;
    else
      return fail("unknown scrypt parameter");
  }
  if (seen != 7) return fail("scrypt parameters ln, r and p are required");
  // Bounds: at least the cost of 2^10 and at most 256 MiB of memory (128 * r * N bytes).
  if (h.params.log2_n < 10 || h.params.log2_n > 20 || h.params.r < 1 || h.params.r > 32 ||
      h.params.p < 1 || h.params.p > 16 ||
      (128LL * h.params.r << h.params.log2_n) > 256LL * 1024 * 1024)
    return fail("scrypt parameters out of bounds");
  auto salt = unb64(rest.substr(0, d2));
  auto key = unb64(rest.substr(d2 + 1));
  if (!salt || salt->size() < 8 || salt->size() > 64) return fail("bad salt in password hash");
  if (!key || key->size() < 16 || key->size() > 64) return fail("bad key in password hash");
  h.salt = std::move(*salt);
  h.key = std::move(*key);
  return h;
}

bool derive(std::string_view password, std::string_view salt, const KdfParams& p,
            unsigned char* out, std::size_t out_len) {
  const std::uint64_t n = std::uint64_t{1} << p.log2_n;
  const std::uint64_t maxmem =
      128ULL * static_cast<std::uint64_t>(p.r) * (n + 2ULL + p.p) + 16ULL * 1024 * 1024;
  return EVP_PBE_scrypt(password.data(), password.size(),
                        reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n,
                        static_cast<std::uint64_t>(p.r), static_cast<std::uint64_t>(p.p), maxmem,
                        out, out_len) == 1;
}

}  // namespace

std::string_view to_string(Role r) {
  switch (r) {
    case Role::viewer:
      return "viewer";
    case Role::operator_:
      return "operator";
    case Role::admin:
      return "admin";
  }
  return "viewer";
}

std::optional<Role> role_from_string(std::string_view s) {
  if (s == "viewer") return Role::viewer;
  if (s == "operator") return Role::operator_;
  if (s == "admin") return Role::admin;
  return std::nullopt;
}

std::string hash_password(std::string_view password, KdfParams params) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1) throw std::runtime_error("RAND_bytes failed");
  unsigned char key[kKeyBytes];
  if (!derive(password, std::string_view(reinterpret_cast<char*>(salt), sizeof salt), params, key,
              sizeof key))
    throw std::runtime_error("EVP_PBE_scrypt failed");
  return "$scrypt$ln=" + std::to_string(params.log2_n) + ",r=" + std::to_string(params.r) +
         ",p=" + std::to_string(params.p) + "$" + b64(salt, sizeof salt) + "$" +
         b64(key, sizeof key);
}

bool valid_password_hash(std::string_view stored, std::string* why) {
  return parse_hash(stored, why).has_value();
}

bool verify_password(std::string_view password, std::string_view stored) {
  if (password.size() > kMaxPasswordBytes) return false;
  auto h = parse_hash(stored, nullptr);
  if (!h) return false;
  std::string out(h->key.size(), '\0');
  if (!derive(password, h->salt, h->params, reinterpret_cast<unsigned char*>(out.data()),
              out.size()))
    return false;
  return CRYPTO_memcmp(out.data(), h->key.data(), out.size()) == 0;
}

std::string check_user_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return "a user name must be 1 to 64 characters";
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
          c == '@'))
      return "a user name may only hold A-Z, a-z, 0-9, '.', '_', '-' and '@'";
  return {};
}

UsersParse parse_users(std::string_view text) {
  UsersParse r;
  if (text.size() > kMaxUsersFileBytes) {
    r.error = "the users file is larger than 1 MiB";
    return r;
  }
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error = "not a JSON object";
    return r;
  }
  for (const auto& [k, v] : j.items())
    if (k != "version" && k != "users") {
      r.error = "unknown field '" + k + "'";
      return r;
    }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != 1) {
    r.error = "'version' must be 1";
    return r;
  }
  if (!j.contains("users") || !j["users"].is_array()) {
    r.error = "'users' must be a list";
    return r;
  }
  std::vector<User> users;
  std::set<std::string> names;
  std::size_t i = 0;
  for (const auto& u : j["users"]) {
    const std::string at = "users[" + std::to_string(i++) + "]";
    if (!u.is_object()) {
      r.error = at + ": expected an object";
      return r;
    }
    for (const auto& [k, v] : u.items())
      if (k != "name" && k != "role" && k != "password") {
        r.error = at + ": unknown field '" + k + "'";
        return r;
      }
    for (const char* f : {"name", "role", "password"})
      if (!u.contains(f) || !u[f].is_string()) {
        r.error = at + ": '" + f + "' must be a string";
        return r;
      }
    User user;
    user.name = u["name"].get<std::string>();
    if (auto e = check_user_name(user.name); !e.empty()) {
      r.error = at + ".name: " + e;
      return r;
    }
    auto role = role_from_string(u["role"].get<std::string>());
    if (!role) {
      r.error = at + ".role: must be viewer, operator or admin";
      return r;
    }
    user.role = *role;
    user.password_hash = u["password"].get<std::string>();
    std::string why;
    if (!valid_password_hash(user.password_hash, &why)) {
      r.error = at + ".password: " + why;
      return r;
    }
    if (!names.insert(user.name).second) {
      r.error = at + ".name: duplicate user '" + user.name + "'";
      return r;
    }
    users.push_back(std::move(user));
  }
  r.users = std::move(users);
  return r;
}

std::string render_users(const std::vector<User>& users) {
  json list = json::array();
  for (const auto& u : users)
    list.push_back({{"name", u.name}, {"role", to_string(u.role)}, {"password", u.password_hash}});
  return json{{"version", 1}, {"users", list}}.dump(2) + "\n";
}

UsersParse load_users_file(const std::string& path) {
  UsersParse r;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) {
      r.users = std::vector<User>{};
      return r;
    }
    r.error = path + ": cannot read: " + std::strerror(errno);
    return r;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  r = parse_users(text);
  if (!r.users) r.error = path + ": " + r.error;
  return r;
}

void save_users_file(const std::string& path, const std::vector<User>& users) {
  if (auto err = edge::write_file_atomic(path, render_users(users), 0600); !err.empty())
    throw std::runtime_error(err);
}

}  // namespace anju::firmware
