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

}  // namespace anju::firmware
