// The door command parser (drivers/access/src/door_command_parser.cpp): what property management
// may send on anju/<site>/cmd/door/<door> and cmd/door_group/<group>, and the errors that name
// what is wrong.
#include <catch2/catch.hpp>

#include <string>

#include "anju/drivers/door_command.hpp"

using namespace anju::drivers::access;

TEST_CASE("door commands: open, lockdown and release are parsed with who and until when",
          "[door_command]") {
  auto r = parse_door_command(
      "door", "gate-north",
      R"({"action":"open","user":"guard-1","request_id":"r1","expires_ms":1764567890123,)"
      R"("note":"parcel delivery","reply_to":"pm/replies/guard-1"})",
      "local_mqtt");
  REQUIRE(r.command);
  CHECK(r.error.empty());
  CHECK(r.command->action == DoorAction::open);
  CHECK(r.command->target == "gate-north");
  CHECK(r.command->user == "guard-1");
  CHECK(r.command->request_id == "r1");
  CHECK(r.command->expires_ms == 1764567890123);
  CHECK(r.command->note == "parcel delivery");
  CHECK(r.command->reply_to == "pm/replies/guard-1");
  CHECK(r.command->via == "local_mqtt");
  CHECK(audit_action(*r.command) == "door_open");

  r = parse_door_command("door_group", "north-gates",
                         R"({"action":"lockdown","user":"manager","request_id":"r2"})", "x");
  REQUIRE(r.command);
  CHECK(r.command->action == DoorAction::lockdown);
  CHECK(r.command->target == "north-gates");
  CHECK(r.command->expires_ms == 0);
  CHECK(audit_action(*r.command) == "door_group_lockdown");
  r = parse_door_command("door_group", "north-gates",
                         R"({"action":"release","user":"manager","request_id":"r3"})", "x");
  REQUIRE(r.command);
  CHECK(audit_action(*r.command) == "door_group_release");
}

TEST_CASE("door commands: each refusal names what is wrong", "[door_command]") {
  auto error = [](std::string scope, std::string target, std::string payload) {
    auto r = parse_door_command(scope, target, payload, "local_mqtt");
    CHECK_FALSE(r.command);
    return r.error;
  };
  const std::string ok_open =
      R"({"action":"open","user":"u","request_id":"r","expires_ms":1764567890123})";
  CHECK(error("window", "w1", ok_open) ==
        "unknown command scope 'window' (expected door or door_group)");
  CHECK(error("door", "", ok_open) == "bad door id in the topic");
  CHECK(error("door", "a+b", ok_open) == "bad door id in the topic");
  CHECK(error("door_group", std::string(65, 'g'), ok_open) == "bad door group id in the topic");
  CHECK(error("door", "gate", "open please") == "command is not valid JSON");
  CHECK(error("door", "gate", "[1]") == "command must be a JSON object");
  CHECK(error("door", "gate", std::string(5000, ' ')).starts_with("command too large: 5000 bytes"));
  // An action that belongs to the other scope.
  CHECK(error("door", "gate", R"({"action":"lockdown","user":"u","request_id":"r"})") ==
        "unknown action 'lockdown' for a door (expected open)");
  CHECK(
      error("door_group", "g", R"({"action":"open","user":"u","request_id":"r","expires_ms":1})") ==
      "unknown action 'open' for a door group (expected lockdown or release)");
  CHECK(error("door", "gate", R"({"user":"u","request_id":"r","expires_ms":1})") ==
        "missing field 'action'");
  CHECK(error("door", "gate", R"({"action":"open","request_id":"r","expires_ms":1})") ==
        "missing field 'user' (who is doing this)");
  CHECK(error("door", "gate",
              R"({"action":"open","user":"a\u0007b","request_id":"r",)"
              R"("expires_ms":1})") == "field 'user' has characters that are not allowed");
  CHECK(error("door", "gate", R"({"action":"open","user":"u","expires_ms":1})") ==
        "missing field 'request_id'");
  // A remote open must say until when it may be done: a late one must not open the door.
  CHECK(error("door", "gate", R"({"action":"open","user":"u","request_id":"r"})") ==
        "missing field 'expires_ms' (a remote open must say until when it may be done)");
  CHECK(error("door", "gate",
              R"({"action":"open","user":"u","request_id":"r","expires_ms":"soon"})") ==
        "field 'expires_ms' must be a positive integer (ms since the epoch)");
  CHECK(error("door", "gate", R"({"action":"open","user":7,"request_id":"r","expires_ms":1})") ==
        "field 'user' must be a string");
  CHECK(error("door", "gate",
              R"({"action":"open","user":"u","request_id":"r","expires_ms":1,"force":true})") ==
        "unknown field 'force'");
  CHECK(error("door", "gate",
              R"({"action":"open","user":"u","request_id":"r","expires_ms":1,"reply_to":"a/#"})") ==
        "field 'reply_to' must be a topic name, not a filter");
}
