// Dashboard users: the scrypt password hash (format, verification, wrong passwords, tampering),
// the users file (round trip, atomic save with mode 0600, every kind of bad file).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "anju/firmware/users.hpp"

using namespace anju::firmware;
namespace fs = std::filesystem;

namespace {

// Tests that need many hashes use a cheaper N; the default cost is checked on its own.
const KdfParams kFast{10, 8, 1};

struct TmpDir {
  fs::path path;
  TmpDir() {
    std::string t = (fs::temp_directory_path() / "anju-users-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("users: the default hash is scrypt N=2^15 r=8 p=1 with a 16-byte salt", "[users]") {
  const std::string h = hash_password("correct horse battery");
  REQUIRE(h.rfind("$scrypt$ln=15,r=8,p=1$", 0) == 0);
  // salt: 16 bytes → 24 base64 characters; key: 32 bytes → 44.
  const auto salt_start = std::string("$scrypt$ln=15,r=8,p=1$").size();
  const auto dollar = h.find('$', salt_start);
  CHECK(dollar - salt_start == 24);
  CHECK(h.size() - dollar - 1 == 44);
  CHECK(verify_password("correct horse battery", h));
  CHECK_FALSE(verify_password("correct horse batterY", h));
  // A fresh salt every time: the same password never gives the same string.
  CHECK(hash_password("correct horse battery", kFast) !=
        hash_password("correct horse battery", kFast));
}

TEST_CASE("users: verification refuses wrong, empty and tampered input", "[users]") {
  const std::string h = hash_password("s3cret-pass", kFast);
  CHECK(verify_password("s3cret-pass", h));
  CHECK_FALSE(verify_password("", h));
  CHECK_FALSE(verify_password("s3cret-pas", h));
  CHECK_FALSE(verify_password("s3cret-pass ", h));
  // A flipped character of the stored key fails; so does a changed parameter.
  std::string tampered = h;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  CHECK_FALSE(verify_password("s3cret-pass", tampered));
  std::string other_r = h;
  other_r.replace(other_r.find("r=8"), 3, "r=9");
  CHECK_FALSE(verify_password("s3cret-pass", other_r));
  // Malformed or unsupported strings are refused, never crash, and say why.
  for (const std::string bad : {"", "plain", "$scrypt$", "$scrypt$ln=15,r=8,p=1$$",
                                "$scrypt$ln=15,r=8$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
                                "$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$"
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                "$pbkdf2$i=1$AAAA$AAAA", "$scrypt$ln=15,r=8,p=1$!!!!$????"}) {
    INFO(bad);
    std::string why;
    CHECK_FALSE(valid_password_hash(bad, &why));
    CHECK_FALSE(why.empty());
    CHECK_FALSE(verify_password("x", bad));
  }
}

TEST_CASE("users: names and roles", "[users]") {
  CHECK(check_user_name("wang.wei").empty());
  CHECK(check_user_name("ops-1@b3").empty());
  CHECK_FALSE(check_user_name("").empty());
  CHECK_FALSE(check_user_name("wang wei").empty());
  CHECK_FALSE(check_user_name(std::string(65, 'a')).empty());
  CHECK(role_from_string("operator") == Role::operator_);
  CHECK_FALSE(role_from_string("root"));
  CHECK(Role::viewer < Role::operator_);
  CHECK(Role::operator_ < Role::admin);
  CHECK(to_string(Role::admin) == "admin");
}

TEST_CASE("users: the file round-trips and is written atomically with mode 0600", "[users]") {
  TmpDir dir;
  const std::string path = (dir.path / "users.json").string();
  // A missing file is an empty list, not an error (a fresh gateway has no users yet).
  auto none = load_users_file(path);
  REQUIRE(none.users);
  CHECK(none.users->empty());

  std::vector<User> users{{"wang", Role::operator_, hash_password("pw-wang-1", kFast)},
                          {"li", Role::viewer, hash_password("pw-li-1", kFast)},
                          {"admin", Role::admin, hash_password("pw-admin-1", kFast)}};
  save_users_file(path, users);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto back = load_users_file(path);
  REQUIRE(back.users);
  CHECK(*back.users == users);
  CHECK(verify_password("pw-li-1", back.users->at(1).password_hash));
  // No temp file is left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    (void)e;
    ++files;
  }
  CHECK(files == 1);

  // Rewriting replaces the content.
  users.pop_back();
  save_users_file(path, users);
  back = load_users_file(path);
  REQUIRE(back.users);
  CHECK(back.users->size() == 2);
}

TEST_CASE("users: a bad file is a clear error naming the file and the entry", "[users]") {
  TmpDir dir;
  const std::string path = (dir.path / "users.json").string();
  const std::string good_hash = hash_password("pw", kFast);
  struct Case {
    std::string text;
    std::string expect;
  };
  const std::vector<Case> cases{
      {"not json", "not a JSON object"},
      {"[]", "not a JSON object"},
      {R"({"users":[]})", "'version' must be 1"},
      {R"({"version":2,"users":[]})", "'version' must be 1"},
      {R"({"version":1})", "'users' must be a list"},
      {R"({"version":1,"users":[],"extra":1})", "unknown field 'extra'"},
      {R"({"version":1,"users":[7]})", "users[0]: expected an object"},
      {R"({"version":1,"users":[{"name":"a","role":"viewer"}]})", "users[0]: 'password'"},
      {R"({"version":1,"users":[{"name":"a b","role":"viewer","password":")" + good_hash +
           R"("}]})",
       "users[0].name"},
      {R"({"version":1,"users":[{"name":"a","role":"root","password":")" + good_hash + R"("}]})",
       "users[0].role: must be viewer, operator or admin"},
      {R"({"version":1,"users":[{"name":"a","role":"viewer","password":"hunter2"}]})",
       "users[0].password: not a $scrypt$ password hash"},
      {R"({"version":1,"users":[{"name":"a","role":"viewer","password":")" + good_hash +
           R"("},{"name":"a","role":"admin","password":")" + good_hash + R"("}]})",
       "users[1].name: duplicate user 'a'"},
      {R"({"version":1,"users":[{"name":"a","role":"viewer","password":")" + good_hash +
           R"(","pw":"x"}]})",
       "users[0]: unknown field 'pw'"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    write(path, c.text);
    auto r = load_users_file(path);
    CHECK_FALSE(r.users);
    CHECK(r.error.find(path) == 0);
    CHECK(r.error.find(c.expect) != std::string::npos);
  }
}
