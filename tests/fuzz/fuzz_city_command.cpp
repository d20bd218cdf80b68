// Fuzz target: the parser of commands from the city (cloud-bridge/city_command.cpp), whose input
// comes from the city broker. The first line is the command name (the topic's last level), the
// rest the payload. An accepted command has what the daemon relies on; a refusal has a reason;
// the answer built for it is JSON.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "anju/bridge/city_command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const auto nl = all.find('\n');
  const std::string_view name = nl == std::string_view::npos ? "diag" : all.substr(0, nl);
  const std::string_view payload = nl == std::string_view::npos ? all : all.substr(nl + 1);
  const std::int64_t now = 1'760'000'000'000;
  auto r = anju::bridge::parse_city_command(name, payload, now);
  if (r.command) {
    const auto& c = *r.command;
    if (c.request_id.empty() || c.user.empty() || c.expires_ms < now) __builtin_trap();
    if (anju::bridge::needs_authorization(c.name) && c.authorization.empty()) __builtin_trap();
    if ((c.name == anju::bridge::CityCommandName::alert_ack ||
         c.name == anju::bridge::CityCommandName::alert_close) &&
        c.alert_id.empty())
      __builtin_trap();
    if (c.query.limit < 1 || c.query.limit > anju::bridge::kMaxQueryLimit) __builtin_trap();
    if (c.reply_to.find_first_of("+#") != std::string::npos) __builtin_trap();
    // The arguments of evidence.request come from inside the token; parse what is here as if.
    anju::bridge::EvidenceRequest ev;
    std::string why;
    if (anju::bridge::parse_evidence_args(c.args, ev, why) &&
        (ev.alert_id.empty() || ev.reason.empty() || !why.empty()))
      __builtin_trap();
  } else if (r.error.empty()) {
    __builtin_trap();
  }
  const auto answer =
      anju::bridge::city_command_response("s1", r.request_id, now, !r.command, false, r.error);
  if (nlohmann::json::parse(answer, nullptr, false).is_discarded()) __builtin_trap();
  return 0;
}
