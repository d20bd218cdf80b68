#include "anju/firmware/broker_auth.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "anju/edge/mqtt.hpp"

namespace anju::firmware {
namespace {

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Strict: only the alphabet and trailing padding; false when malformed.
bool unbase64(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '+' || c == '/';
    if (!alpha && !(c == '=' && i + 2 >= text.size())) return false;
  }
  out.assign(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return false;
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) --n;  // padding's zeros
  out.resize(static_cast<std::size_t>(n));
  return true;
}

bool has_wildcard_or_control(std::string_view s) {
  for (const char c : s)
    if (c == '+' || c == '#' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

// The trees that belong to a role; a bridge's prefix must not reach into them.
bool overlaps(std::string_view prefix, std::string_view tree) {
  return prefix.substr(0, std::min(prefix.size(), tree.size())) ==
         tree.substr(0, std::min(prefix.size(), tree.size()));
}

}  // namespace

std::string_view to_string(BrokerRole r) {
  switch (r) {
    case BrokerRole::gateway:
      return "gateway";
    case BrokerRole::zigbee2mqtt:
      return "zigbee2mqtt";
    case BrokerRole::chirpstack:
      return "chirpstack";
    case BrokerRole::bridge:
      return "bridge";
    case BrokerRole::operator_:
      return "operator";
    case BrokerRole::viewer:
      return "viewer";
  }
  return "unknown";
}

bool broker_role_from_string(std::string_view s, BrokerRole& out) {
  for (auto r : {BrokerRole::gateway, BrokerRole::zigbee2mqtt, BrokerRole::chirpstack,
                 BrokerRole::bridge, BrokerRole::operator_, BrokerRole::viewer})
    if (to_string(r) == s) {
      out = r;
      return true;
    }
  return false;
}

std::vector<std::string> validate(const std::vector<BrokerClient>& clients) {
  std::vector<std::string> errors;
  std::set<std::string, std::less<>> seen;
  int gateways = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto& c = clients[i];
    const std::string where = "clients[" + std::to_string(i) + "] ('" + c.user + "'): ";
    if (c.user.empty() || c.user.size() > 64)
      errors.push_back(where + "user name must be 1..64 characters");
    for (const char ch : c.user)
      if (ch == ':' || ch == ' ' || static_cast<unsigned char>(ch) < 0x21 || ch == 0x7f) {
        errors.push_back(where + "user name may not contain ':', spaces or control characters");
        break;
      }
    if (!seen.insert(c.user).second) errors.push_back(where + "user listed twice");
    if (c.role == BrokerRole::gateway) ++gateways;
    if (c.role == BrokerRole::bridge) {
      if (c.prefix.empty() || c.prefix.back() != '/')
        errors.push_back(where + "a bridge needs a topic prefix ending in '/', e.g. vendor/acme/");
      else if (has_wildcard_or_control(c.prefix) || c.prefix.front() == '/' ||
               c.prefix.front() == '$')
        errors.push_back(where + "prefix '" + c.prefix +
                         "' may not hold wildcards or control characters or start with / or $");
      else
        for (std::string_view tree : {"anju/", "zigbee2mqtt/", "application/"})
          if (overlaps(c.prefix, tree))
            errors.push_back(where + "prefix '" + c.prefix + "' reaches into " + std::string(tree) +
                             "#, which another role owns");
    } else if (!c.prefix.empty()) {
      errors.push_back(where + "only a bridge has a prefix");
    }
  }
  if (gateways != 1)
    errors.push_back("exactly one client must have the role gateway (anjud itself), found " +
                     std::to_string(gateways));
  return errors;
}

std::string reply_topic_prefix(std::string_view site, std::string_view user) {
  return "anju/" + std::string(site) + "/reply/" + std::string(user) + "/";
}

std::string mosquitto_acl(std::string_view site, const std::vector<BrokerClient>& clients) {
  const std::string anju = "anju/" + std::string(site) + "/";
  std::string out =
      "# Generated by `anju broker-config`: do not edit, regenerate.\n"
      "# Clients without a user name can do nothing (no anonymous section).\n";
  for (const auto& c : clients) {
    out += "\n# " + std::string(to_string(c.role)) + "\nuser " + c.user + "\n";
    switch (c.role) {
      case BrokerRole::gateway:
        out += "topic read zigbee2mqtt/#\n";
        out += "topic write zigbee2mqtt/+/set\n";
        out += "topic read application/#\n";
        for (const auto& b : clients)
          if (b.role == BrokerRole::bridge) out += "topic read " + b.prefix + "#\n";
        out += "topic readwrite " + anju + "#\n";
        break;
      case BrokerRole::zigbee2mqtt:
        out += "topic readwrite zigbee2mqtt/#\n";
        break;
      case BrokerRole::chirpstack:
        out += "topic readwrite application/#\n";
        break;
      case BrokerRole::bridge:
        out += "topic readwrite " + c.prefix + "#\n";
        break;
      case BrokerRole::operator_:
        out += "topic read " + anju + "alert/#\n";
        out += "topic write " + anju + "cmd/#\n";
        out += "topic read " + reply_topic_prefix(site, c.user) + "#\n";
        break;
      case BrokerRole::viewer:
        out += "topic read " + anju + "alert/#\n";
        break;
    }
  }
  return out;
}

std::string mosquitto_password_line(std::string_view user, std::string_view password,
                                    std::string_view salt, int iterations) {
  unsigned char hash[64];
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha512(), sizeof hash,
                        hash) != 1)
    throw std::runtime_error("PBKDF2 failed");
  return std::string(user) + ":$7$" + std::to_string(iterations) + "$" + base64(salt) + "$" +
         base64(std::string_view(reinterpret_cast<const char*>(hash), sizeof hash));
}

std::string random_salt() {
  std::string salt(12, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), 12) != 1)
    throw std::runtime_error("no random bytes from OpenSSL");
  return salt;
}

std::string random_password() {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  while (out.size() < 24) {
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("no random bytes from OpenSSL");
    for (const unsigned char x : b)
      if (x < 248 && out.size() < 24) out.push_back(kChars[x % 62]);  // 248 = 4 × 62: unbiased
  }
  return out;
}

BrokerStoreParse parse_broker_store(std::string_view text) {
  using nlohmann::json;
  BrokerStoreParse r;
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("clients") ||
      !j["clients"].is_array()) {
    r.error = "not a clients file: expected {\"version\":1,\"clients\":[...]}";
    return r;
  }
  for (std::size_t i = 0; i < j["clients"].size(); ++i) {
    const json& e = j["clients"][i];
    const std::string where = "clients[" + std::to_string(i) + "]: ";
    auto text_field = [&](const char* key, bool required, std::string& out) {
      if (!e.contains(key)) {
        if (required) r.error = where + "'" + key + "' is missing";
        return !required;
      }
      if (!e[key].is_string()) {
        r.error = where + "'" + key + "' must be a string";
        return false;
      }
      out = e[key].get<std::string>();
      return true;
    };
    if (!e.is_object()) {
      r.error = where + "must be an object";
      return r;
    }
    for (const auto& [key, value] : e.items()) {
      (void)value;
      if (key != "user" && key != "role" && key != "prefix" && key != "password" && key != "salt" &&
          key != "source") {
        r.error = where + "unknown field '" + key + "'";
        return r;
      }
    }
    BrokerCredential c;
    std::string role, salt64;
    if (!text_field("user", true, c.client.user) || !text_field("role", true, role) ||
        !text_field("prefix", false, c.client.prefix) ||
        !text_field("password", true, c.password) || !text_field("salt", true, salt64) ||
        !text_field("source", true, c.source))
      return r;
    if (!broker_role_from_string(role, c.client.role)) {
      r.error = where + "unknown role '" + role + "'";
      return r;
    }
    if (!unbase64(salt64, c.salt) || c.salt.size() != 12) {
      r.error = where + "'salt' must be 12 bytes in base64";
      return r;
    }
    if (c.password.empty()) {
      r.error = where + "'password' is empty";
      return r;
    }
    if (c.source != "config" && c.source != "users" && c.source != "cli") {
      r.error = where + "'source' must be config, users or cli";
      return r;
    }
    r.clients.push_back(std::move(c));
  }
  return r;
}

std::string render_broker_store(const std::vector<BrokerCredential>& clients) {
  using nlohmann::json;
  json list = json::array();
  for (const auto& c : clients) {
    json e{{"user", c.client.user},
           {"role", std::string(to_string(c.client.role))},
           {"password", c.password},
           {"salt", base64(c.salt)},
           {"source", c.source}};
    if (!c.client.prefix.empty()) e["prefix"] = c.client.prefix;
    list.push_back(std::move(e));
  }
  return json{{"version", 1}, {"clients", std::move(list)}}.dump(2) + "\n";
}

std::string mosquitto_password_file(const std::vector<BrokerCredential>& clients) {
  std::string out;
  for (const auto& c : clients)
    out += mosquitto_password_line(c.client.user, c.password, c.salt) + "\n";
  return out;
}

std::string mosquitto_conf_snippet(std::string_view site, std::string_view listen_host,
                                   int listen_port, std::string_view passwd_path,
                                   std::string_view acl_path) {
  std::string out = "# Generated by `anju broker-config` for site " + std::string(site) +
                    ": the compound's local bus.\n"
                    "# Put it in /etc/mosquitto/conf.d/ (or include it) and restart mosquitto.\n"
                    "per_listener_settings false\n"
                    "listener " +
                    std::to_string(listen_port);
  if (!listen_host.empty()) out += " " + std::string(listen_host);
  out += "\nallow_anonymous false\n";
  out += "password_file " + std::string(passwd_path) + "\n";
  out += "acl_file " + std::string(acl_path) + "\n";
  out +=
      "# Keep QoS 1 messages for a briefly absent anjud (Mosquitto's default of 1000 drops the "
      "rest).\n"
      "max_queued_messages 100000\n"
      "# QoS 1 messages in flight per client (MQTT 5: the Receive Maximum). Mosquitto's default\n"
      "# of 20 throttles anjud's window of " +
      std::to_string(anju::edge::LocalBus::kWindow) +
      " (docs/ARCHITECTURE.md, \"The brokers' Receive Maximum\").\n"
      "max_inflight_messages " +
      std::to_string(anju::edge::LocalBus::kWindow) +
      "\n"
      "set_tcp_nodelay true\n";
  return out;
}

}  // namespace anju::firmware
