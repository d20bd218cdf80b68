// Property management's door commands on the local bus (issue 4, "Lock-down and remote open"):
//
//   anju/<site>/cmd/door/<door>         {"action": "open", ...}        the lock pulsed once
//   anju/<site>/cmd/door_group/<group>  {"action": "lockdown"|"release", ...}
//
// Fields: action, user (who asks; required), request_id (required: a retried command is applied
// once), note (optional), reply_to (MQTT 3.1.1 clients; MQTT 5 ones use the response topic) and
// expires_ms (ms since the epoch; required for "open": a remote open that arrives late, after a
// broker outage or a restart, must not open the door). Unknown fields are errors.
// The answer is {"ok": true, ...} or {"ok": false, "error": "..."}; what was done is journaled as
// an `audit` event (action door_open / door_group_lockdown / door_group_release).
// Pure: parse_door_command() is unit-tested and fuzzed (fuzz_door_command).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace anju::drivers::access {

enum class DoorAction { open, lockdown, release };
std::string_view to_string(DoorAction a);

struct DoorCommand {
  DoorAction action = DoorAction::open;
  std::string target;  // the door (open) or the door group (lockdown, release)
  std::string user;
  std::string request_id;
  std::string note;
  std::string reply_to;
  std::int64_t expires_ms = 0;  // 0: none (lockdown, release)
  std::string via;              // "local_mqtt", ...
};

struct DoorCommandParse {
  std::optional<DoorCommand> command;
  std::string error;  // names the field
};

inline constexpr std::size_t kMaxDoorCommandBytes = 4 * 1024;

// `scope` is the topic level before the target: "door" or "door_group".
DoorCommandParse parse_door_command(std::string_view scope, std::string_view target,
                                    std::string_view payload, std::string_view via);

// The audit action journaled for a command: "door_open", "door_group_lockdown", ...
std::string audit_action(const DoorCommand& c);

}  // namespace anju::drivers::access
