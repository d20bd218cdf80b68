#include "anju/firmware/door_commands.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "anju/edge/event.hpp"
#include "anju/edge/files.hpp"

namespace anju::firmware {

using drivers::access::DoorAction;
using drivers::access::DoorCommand;
using json = nlohmann::json;

namespace {
constexpr std::size_t kRemembered = 256;
}  // namespace

DoorCommands::DoorCommands(std::string site, std::string grid_code, const edge::Clock& clock,
                           drivers::access::CredentialBook& book, OpenDoor open_door, Submit submit,
                           std::string state_path)
    : site_(std::move(site)),
      grid_code_(std::move(grid_code)),
      clock_(clock),
      book_(book),
      open_door_(std::move(open_door)),
      submit_(std::move(submit)),
      state_path_(std::move(state_path)) {}

std::vector<std::string> DoorCommands::restore() {
  std::ifstream in(state_path_);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  const auto j = json::parse(ss.str(), nullptr, false);
  const auto groups = j.is_object() ? j.find("locked_down") : j.end();
  if (!j.is_object() || groups == j.end() || !groups->is_array()) {
    spdlog::error(
        "door commands: {} is not a lock-down state file (expected {{\"locked_down\": "
        "[...]}}); no group is locked down by command",
        state_path_);
    return {};
  }
  for (const auto& g : *groups) {
    if (!g.is_string()) continue;
    locked_.insert(g.get<std::string>());
    book_.set_locked_down(g.get<std::string>(), true);
  }
  return {locked_.begin(), locked_.end()};
}

bool DoorCommands::save(std::string& error) const {
  // Durable: a lock-down must survive a power cut.
  error = edge::write_file_atomic(state_path_, json{{"locked_down", locked_}}.dump() + "\n", 0640);
  return error.empty();
}

void DoorCommands::audit(const DoorCommand& c, bool ok, const std::string& reason, json extra) {
  edge::Event e = edge::gateway_event(edge::EventKind::audit, clock_);
  e.site = site_;
  e.grid_code = grid_code_;
  e.severity = 4;
  e.source = "door_command";
  e.attrs = {{"via", c.via},
             {"action", drivers::access::audit_action(c)},
             {"user", c.user},
             {"ok", ok},
             {"request_id", c.request_id}};
  e.attrs[c.action == DoorAction::open ? "door" : "door_group"] = c.target;
  if (!c.note.empty()) e.attrs["note"] = c.note;
  if (!reason.empty()) e.attrs["reason"] = reason;
  for (auto it = extra.begin(); it != extra.end(); ++it) e.attrs[it.key()] = it.value();
  if (!submit_(std::move(e)))
    spdlog::warn("door command {} ({}): audit not journaled (stopping)", c.request_id,
                 drivers::access::audit_action(c));
}

void DoorCommands::refused(const std::string& topic_level, const std::string& error) {
  // Built whole rather than assigned field by field: GCC 12 at -O3 warns falsely (-Wrestrict,
  // PR 105329) on the short string assignments once they are inlined here.
  const DoorCommand c{.action = DoorAction::open,
                      .target = topic_level,
                      .user = std::string(1, '?'),
                      .request_id = {},
                      .note = {},
                      .reply_to = {},
                      .expires_ms = 0,
                      .via = "local_mqtt"};
  audit(c, false, error, json::object());
}

json DoorCommands::handle(const DoorCommand& c) {
  for (const auto& [id, answer] : answered_)
    if (id == c.request_id) return answer;  // a retry: answered, not applied again
  json answer = apply(c);
  answer["request_id"] = c.request_id;
  answered_.emplace_back(c.request_id, answer);
  if (answered_.size() > kRemembered) answered_.pop_front();
  return answer;
}

json DoorCommands::apply(const DoorCommand& c) {
  const std::string what = drivers::access::audit_action(c);
  auto refuse = [&](const std::string& why) {
    spdlog::warn("door command {} {} by {} (request {}) refused: {}", what, c.target, c.user,
                 c.request_id, why);
    audit(c, false, why, json::object());
    return json{{"ok", false}, {"error", why}};
  };
  switch (c.action) {
    case DoorAction::open: {
      const std::int64_t now = clock_.wall_ms();
      if (now > c.expires_ms)
        return refuse("expired: it was to be done by " + std::to_string(c.expires_ms) +
                      " and arrived at " + std::to_string(now));
      const int readers = open_door_ ? open_door_(c.target) : 0;
      if (readers == 0)
        return refuse("no reader that anjud controls opens door '" + c.target + "'");
      spdlog::info("door command: {} opened by {} (request {}), {} reader(s)", c.target, c.user,
                   c.request_id, readers);
      audit(c, true, "", {{"readers", readers}});
      return {{"ok", true}, {"door", c.target}, {"readers", readers}};
    }
    case DoorAction::lockdown:
    case DoorAction::release: {
      const bool lock = c.action == DoorAction::lockdown;
      if (!book_.has_door_group(c.target))
        return refuse("unknown door group '" + c.target + "' (not in the credentials file)");
      const auto before = locked_;
      if (lock)
        locked_.insert(c.target);
      else
        locked_.erase(c.target);
      std::string err;
      if (locked_ != before && !save(err)) {
        locked_ = before;
        return refuse(err);
      }
      book_.set_locked_down(c.target, lock);
      if (!lock && book_.locked_down().count(c.target))
        return refuse("door group '" + c.target +
                      "' is locked down by the credentials file (locked_down): edit the file "
                      "and reload it");
      spdlog::warn("door command: door group {} {} by {} (request {})", c.target,
                   lock ? "LOCKED DOWN" : "released", c.user, c.request_id);
      audit(c, true, "", json::object());
      return {{"ok", true}, {"door_group", c.target}, {"locked_down", lock}};
    }
  }
  return refuse("unknown action");
}

}  // namespace anju::firmware
