// The compound's local Mosquitto: who may connect and what each may publish or read.
//
// Anju generates the broker's password file and ACL from a list of clients with roles, so that a
// device bridge can publish only its own topics and only operators can send commands:
//   gateway       anjud itself: reads every device topic, writes anju/<site>/#
//   zigbee2mqtt   readwrite zigbee2mqtt/#                 (its own tree, incl. /set commands)
//   chirpstack    readwrite application/#                 (ChirpStack's MQTT integration)
//   bridge        readwrite <prefix>#                     (a vendor gateway, its own prefix only)
//   operator      read anju/<site>/alert/#, write anju/<site>/cmd/#,
//                 read anju/<site>/reply/<user>/#         (command responses)
//   viewer        read anju/<site>/alert/#
// Anonymous clients get nothing. Pure functions; the caller writes the files (mode 0600).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace anju::firmware {

enum class BrokerRole { gateway, zigbee2mqtt, chirpstack, bridge, operator_, viewer };

struct BrokerClient {
  std::string user;
  BrokerRole role = BrokerRole::viewer;
  std::string prefix;  // bridge only: the topic prefix it owns, e.g. "vendor/acme/"
};

std::string_view to_string(BrokerRole r);
// "gateway", "zigbee2mqtt", "chirpstack", "bridge", "operator", "viewer"; false if unknown.
bool broker_role_from_string(std::string_view s, BrokerRole& out);

// Problems with the list, each naming the client: bad user names (Mosquitto's password file is
// "user:hash" per line, so no ':' and no control characters), duplicates, a bridge without a
// prefix or with wildcards in it, a prefix that reaches into another role's tree, no gateway.
std::vector<std::string> validate(const std::vector<BrokerClient>& clients);

// Mosquitto's ACL file for the clients (site = the compound id used in anju/<site>/...).
std::string mosquitto_acl(std::string_view site, const std::vector<BrokerClient>& clients);

// One line of Mosquitto's password file, as `mosquitto_passwd` writes it:
// user:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt)>.
// `salt` is 12 random bytes (from random_salt() in production; fixed in tests).
std::string mosquitto_password_line(std::string_view user, std::string_view password,
                                    std::string_view salt, int iterations = 101);
std::string random_salt();  // 12 bytes from OpenSSL's RAND_bytes
// A new random password (24 characters from [A-Za-z0-9]), for generated client credentials.
std::string random_password();

// The topic a client must use as its response topic for commands (v5) or `reply_to` (v3.1.1),
// so that the ACL lets it read the answer.
std::string reply_topic_prefix(std::string_view site, std::string_view user);

// What `anju broker-config` keeps between runs in <out dir>/clients.json (mode 0600): every
// client's role, its password in clear (the installer hands it to the device or person; Mosquitto
// only ever sees the hash) and the salt of its hash, so that a run with nothing changed writes
// byte-identical files. `source` says where the client comes from: "config" (the gateway, from
// local_broker.username_file/password_file), "users" (a dashboard user: admin and operator →
// operator, viewer → viewer; re-read on every run) or "cli" (`--client`, kept until `--remove`).
struct BrokerCredential {
  BrokerClient client;
  std::string password;
  std::string salt;  // 12 raw bytes (base64 in the file)
  std::string source;
  bool operator==(const BrokerCredential& o) const {
    return client.user == o.client.user && client.role == o.client.role &&
           client.prefix == o.client.prefix && password == o.password && salt == o.salt &&
           source == o.source;
  }
};
struct BrokerStoreParse {
  std::vector<BrokerCredential> clients;
  std::string error;  // non-empty: what is wrong, naming the entry
};
// Pure: {"version":1,"clients":[{"user","role","prefix"?,"password","salt","source"}]}.
BrokerStoreParse parse_broker_store(std::string_view text);
std::string render_broker_store(const std::vector<BrokerCredential>& clients);
// The password file: one mosquitto_password_line per client, in the order given.
std::string mosquitto_password_file(const std::vector<BrokerCredential>& clients);

// A mosquitto.conf snippet for the local bus listener that uses the generated files:
// no anonymous clients, the password file and ACL, and the queue limit Anju needs.
std::string mosquitto_conf_snippet(std::string_view site, std::string_view listen_host,
                                   int listen_port, std::string_view passwd_path,
                                   std::string_view acl_path);

}  // namespace anju::firmware
