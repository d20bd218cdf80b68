// Dashboard users: names, roles and password hashes, kept in a JSON file that `anju user ...`
// edits (atomically: temp file + rename, mode 0600) and anjud reads.
//
// Passwords are hashed with scrypt (OpenSSL EVP_PBE_scrypt; N = 2^15, r = 8, p = 1, a random
// 16-byte salt) and stored as a self-describing string:
//   $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
// so that the cost can be raised later without breaking existing users.
// Thread: plain functions and values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace anju::firmware {

// Ordered: a higher role may do everything a lower one may.
enum class Role { viewer = 0, operator_ = 1, admin = 2 };
std::string_view to_string(Role r);
std::optional<Role> role_from_string(std::string_view s);

struct User {
  std::string name;
  Role role = Role::viewer;
  std::string password_hash;  // hash_password()'s string
  bool operator==(const User&) const = default;
};

struct KdfParams {
  int log2_n = 15;  // N = 2^log2_n
  int r = 8;
  int p = 1;
};

// Random salt (RAND_bytes); throws std::runtime_error only if OpenSSL fails.
std::string hash_password(std::string_view password, KdfParams params = {});
// Constant-time comparison of the derived key; false for a malformed or unsupported hash string.
bool verify_password(std::string_view password, std::string_view stored);
// Pure: whether `stored` is a hash string verify_password understands (bounds included).
bool valid_password_hash(std::string_view stored, std::string* why = nullptr);

// "" when acceptable: 1..64 characters of A-Z a-z 0-9 . _ - @
std::string check_user_name(std::string_view name);

struct UsersParse {
  std::optional<std::vector<User>> users;
  std::string error;  // names the entry and the field
};
// Pure: {"version":1,"users":[{"name":"wang","role":"operator","password":"$scrypt$..."}]}.
// Unknown fields, duplicate names, bad roles or hashes are errors.
UsersParse parse_users(std::string_view text);
std::string render_users(const std::vector<User>& users);

// A missing file is an empty list; an unreadable or malformed one an error naming the file.
UsersParse load_users_file(const std::string& path);
// Writes <path>.tmp-<pid> (mode 0600), fsyncs it and renames it over `path`. Throws on failure.
void save_users_file(const std::string& path, const std::vector<User>& users);

}  // namespace anju::firmware
