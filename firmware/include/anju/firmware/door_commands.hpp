// Door commands from property management (drivers/access/door_command.hpp): a remote open pulses
// the lock of the OSDP readers at the door; a lock-down makes every read at the group's doors a
// denial with reason "locked_down" until it is released. Each command, done or refused, is an
// `audit` event in the journal (who, what, which door or group, the request id, the outcome).
//
// Lock-downs survive a restart: the groups locked down by command are kept in a small state
// file (<data_dir>/door_lockdowns.json, replaced atomically), read at start. A lock-down set in
// the credentials file (`locked_down`) is that file's; a release by command cannot lift it and
// says so.
// A request id seen in the last 256 commands is answered as before and not applied again (a
// client's retry, the broker's redelivery).
// Thread: handle() from the bus's callback thread (one at a time).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/drivers/credentials.hpp"
#include "anju/drivers/door_command.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::firmware {

class DoorCommands {
 public:
  // Pulses the lock at a door; returns how many readers were asked (OsdpControlPanel::open_door).
  using OpenDoor = std::function<int(const std::string& door)>;
  using Submit = std::function<bool(edge::Event)>;

  DoorCommands(std::string site, std::string grid_code, const edge::Clock& clock,
               drivers::access::CredentialBook& book, OpenDoor open_door, Submit submit,
               std::string state_path);
  // Restores the lock-downs from the state file into the book; returns them. A file that
  // cannot be read is reported in the log and ignored (nothing is locked down by it).
  std::vector<std::string> restore();
  // Applies a command and returns the answer: {"ok": true, ...} or {"ok": false, "error"}.
  nlohmann::json handle(const drivers::access::DoorCommand& c);
  // Audits a command that could not be parsed.
  void refused(const std::string& topic_level, const std::string& error);

 private:
  nlohmann::json apply(const drivers::access::DoorCommand& c);
  void audit(const drivers::access::DoorCommand& c, bool ok, const std::string& reason,
             nlohmann::json extra);
  bool save(std::string& error) const;

  std::string site_, grid_code_;
  const edge::Clock& clock_;
  drivers::access::CredentialBook& book_;
  OpenDoor open_door_;
  Submit submit_;
  std::string state_path_;
  std::set<std::string> locked_;  // by command
  std::deque<std::pair<std::string, nlohmann::json>> answered_;
};

}  // namespace anju::firmware
