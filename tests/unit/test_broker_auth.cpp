// The local broker's generated password file and ACL.
#include <openssl/evp.h>
#include <catch2/catch.hpp>

#include "anju/firmware/broker_auth.hpp"

using namespace anju::firmware;

namespace {
std::string unbase64(const std::string& s) {
  std::string out(s.size(), '\0');
  int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  REQUIRE(n >= 0);
  // EVP_DecodeBlock counts the padding's zero bytes: take them off.
  for (auto it = s.rbegin(); it != s.rend() && *it == '='; ++it) --n;
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::vector<BrokerClient> compound() {
  return {{"anjud", BrokerRole::gateway, ""},
          {"z2m", BrokerRole::zigbee2mqtt, ""},
          {"acme", BrokerRole::bridge, "vendor/acme/"},
          {"guard1", BrokerRole::operator_, ""},
          {"lobby", BrokerRole::viewer, ""}};
}
}  // namespace

TEST_CASE("password lines are what mosquitto_passwd writes", "[broker]") {
  // From Debian 12's mosquitto_passwd 2.0.11: `mosquitto_passwd -c -b pw alice secret`.
  const std::string expected =
      "alice:$7$101$9NgN3ZHRFUC3zZ3A$rn3IOAUvy806iWlrp1R4TudWUvLHysSIgeWuJr1L/PQPbLgSJNUr5ufWWnW9"
      "ThGFbc2Oe+FtUGBakOCQNAilSw==";
  const std::string salt = unbase64("9NgN3ZHRFUC3zZ3A");
  REQUIRE(salt.size() == 12);
  CHECK(mosquitto_password_line("alice", "secret", salt) == expected);
  CHECK(mosquitto_password_line("alice", "Secret", salt) != expected);
}

TEST_CASE("random salts and passwords differ and have the documented shape", "[broker]") {
  CHECK(random_salt().size() == 12);
  CHECK(random_salt() != random_salt());
  const auto p = random_password();
  CHECK(p.size() == 24);
  CHECK(p.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
        std::string::npos);
  CHECK(p != random_password());
}

TEST_CASE("the ACL gives each role only its own topics", "[broker]") {
  const std::string acl = mosquitto_acl("site-a", compound());
  // No anonymous section: only `user` blocks.
  CHECK(acl.find("\ntopic") == acl.find("\nuser anjud\n") + std::string("\nuser anjud").size());
  auto block = [&](const std::string& user) {
    const auto start = acl.find("\nuser " + user + "\n");
    REQUIRE(start != std::string::npos);
    const auto end = acl.find("\n\n", start + 1);
    auto b = acl.substr(start, end == std::string::npos ? std::string::npos : end - start);
    while (!b.empty() && b.back() == '\n') b.pop_back();
    return b;
  };
  CHECK(block("z2m") == "\nuser z2m\ntopic readwrite zigbee2mqtt/#");
  CHECK(block("acme") == "\nuser acme\ntopic readwrite vendor/acme/#");
  CHECK(block("guard1") ==
        "\nuser guard1\ntopic read anju/site-a/alert/#\ntopic write anju/site-a/cmd/#\n"
        "topic read anju/site-a/reply/guard1/#");
  CHECK(block("lobby") == "\nuser lobby\ntopic read anju/site-a/alert/#");
  const auto gw = block("anjud");
  CHECK(gw.find("topic read vendor/acme/#") != std::string::npos);
  CHECK(gw.find("topic readwrite anju/site-a/#") != std::string::npos);
  CHECK(gw.find("topic read zigbee2mqtt/#") != std::string::npos);
}

TEST_CASE("client lists with mistakes are refused with the client named", "[broker]") {
  CHECK(validate(compound()).empty());
  auto c = compound();
  c.push_back({"bad:name", BrokerRole::viewer, ""});
  c.push_back({"z2m", BrokerRole::viewer, ""});
  c.push_back({"sneaky", BrokerRole::bridge, "anju/site-a/"});
  c.push_back({"wild", BrokerRole::bridge, "vendor/+/"});
  c.push_back({"noslash", BrokerRole::bridge, "vendor/x"});
  c.push_back({"anjud2", BrokerRole::gateway, ""});
  const auto errors = validate(c);
  auto has = [&](const std::string& text) {
    for (const auto& e : errors)
      if (e.find(text) != std::string::npos) return true;
    return false;
  };
  CHECK(has("('bad:name'): user name may not contain ':'"));
  CHECK(has("('z2m'): user listed twice"));
  CHECK(has("('sneaky'): prefix 'anju/site-a/' reaches into anju/#"));
  CHECK(has("('wild'): prefix 'vendor/+/' may not hold wildcards"));
  CHECK(has("('noslash'): a bridge needs a topic prefix ending in '/'"));
  CHECK(has("exactly one client must have the role gateway"));
  BrokerRole r;
  CHECK(broker_role_from_string("operator", r));
  CHECK(r == BrokerRole::operator_);
  CHECK_FALSE(broker_role_from_string("root", r));
}
