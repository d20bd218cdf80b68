#include <nlohmann/json.hpp>

#include "anju/drivers/door_command.hpp"
#include "anju/edge/lifecycle.hpp"

namespace anju::drivers::access {
std::string_view to_string(DoorAction a) {
  switch (a) {
    case DoorAction::open:
      return "open";
    case DoorAction::lockdown:
      return "lockdown";
    case DoorAction::release:
      return "release";
  }
  return "unknown";
}

std::string audit_action(const DoorCommand& c) {
  return c.action == DoorAction::open ? "door_open"
                                      : "door_group_" + std::string(to_string(c.action));
}

DoorCommandParse parse_door_command(std::string_view scope, std::string_view target,
                                    std::string_view payload, std::string_view via) {
  DoorCommandParse r;
  if (scope != "door" && scope != "door_group") {
    r.error = "unknown command scope '" + std::string(scope.substr(0, 32)) +
              "' (expected door or door_group)";
    return r;
  }
  const bool door = scope == "door";
  if (!edge::printable_id(target, 64)) {
    r.error = std::string("bad ") + (door ? "door" : "door group") + " id in the topic";
    return r;
  }
  const auto parsed = edge::parse_command_object(payload, kMaxDoorCommandBytes, r.error);
  if (!parsed) return r;
  const auto& j = *parsed;
  DoorCommand c;
  c.target = std::string(target);
  c.via = std::string(via);
  bool have_action = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = it.key();
    const auto& v = it.value();
    auto need_string = [&](std::string& out, std::size_t max) {
      if (!v.is_string()) {
        r.error = "field '" + key + "' must be a string";
        return false;
      }
      out = v.get<std::string>();
      if (out.size() > max) {
        r.error = "field '" + key + "' is longer than " + std::to_string(max) + " bytes";
        return false;
      }
      return true;
    };
    if (key == "action") {
      std::string a;
      if (!need_string(a, 32)) return r;
      if (door && a == "open") {
        c.action = DoorAction::open;
      } else if (!door && a == "lockdown") {
        c.action = DoorAction::lockdown;
      } else if (!door && a == "release") {
        c.action = DoorAction::release;
      } else {
        r.error = "unknown action '" + a + "' for a " + (door ? "door" : "door group") +
                  (door ? " (expected open)" : " (expected lockdown or release)");
        return r;
      }
      have_action = true;
    } else if (key == "user") {
      if (!need_string(c.user, 64)) return r;
    } else if (key == "request_id") {
      if (!need_string(c.request_id, 128)) return r;
    } else if (key == "note") {
      if (!need_string(c.note, 1000)) return r;
    } else if (key == "reply_to") {
      if (!need_string(c.reply_to, 256)) return r;
      if (c.reply_to.empty() || c.reply_to.find_first_of("+#") != std::string::npos) {
        r.error = "field 'reply_to' must be a topic name, not a filter";
        return r;
      }
    } else if (key == "expires_ms") {
      if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) {
        r.error = "field 'expires_ms' must be a positive integer (ms since the epoch)";
        return r;
      }
      c.expires_ms = v.get<std::int64_t>();
    } else {
      r.error = "unknown field '" + key.substr(0, 64) + "'";
      return r;
    }
  }
  if (!have_action) {
    r.error = "missing field 'action'";
  } else if (c.user.empty()) {
    r.error = "missing field 'user' (who is doing this)";
  } else if (!edge::printable_id(c.user, 64)) {
    r.error = "field 'user' has characters that are not allowed";
  } else if (!edge::printable_id(c.request_id, 128)) {
    r.error = c.request_id.empty() ? "missing field 'request_id'"
                                   : "field 'request_id' has characters that are not allowed";
  } else if (c.action == DoorAction::open && c.expires_ms == 0) {
    r.error = "missing field 'expires_ms' (a remote open must say until when it may be done)";
  } else {
    r.command = std::move(c);
  }
  return r;
}

}  // namespace anju::drivers::access
