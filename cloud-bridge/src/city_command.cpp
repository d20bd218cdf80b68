#include "anju/bridge/city_command.hpp"

#include "anju/bridge/city_token.hpp"

#include <array>
#include <utility>

#include "anju/edge/lifecycle.hpp"

namespace anju::bridge {

namespace {

constexpr std::array<std::pair<CityCommandName, std::string_view>, 8> kNames{{
    {CityCommandName::alert_ack, "alert.ack"},
    {CityCommandName::alert_close, "alert.close"},
    {CityCommandName::config_apply, "config.apply"},
    {CityCommandName::rules_update, "rules.update"},
    {CityCommandName::credentials_sync, "credentials.sync"},
    {CityCommandName::events_query, "events.query"},
    {CityCommandName::evidence_request, "evidence.request"},
    {CityCommandName::diag, "diag"},
}};

// Printable ASCII without the MQTT wildcards; what ids and user names may contain.
bool printable(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

// Reads a string member into `out`; an error names the member.
bool get_string(const nlohmann::json& v, const std::string& key, std::size_t min, std::size_t max,
                std::string& out, std::string& error) {
  if (!v.is_string()) {
    error = "'" + key + "' must be a string";
    return false;
  }
  out = v.get<std::string>();
  if (out.size() < min || out.size() > max) {
    error = "'" + key + "' must be " + std::to_string(min) + " to " + std::to_string(max) +
            " bytes long";
    return false;
  }
  return true;
}

bool get_int(const nlohmann::json& v, const std::string& key, std::int64_t min, std::int64_t max,
             std::int64_t& out, std::string& error) {
  if (!v.is_number_integer()) {
    error = "'" + key + "' must be an integer";
    return false;
  }
  // A uint64 above INT64_MAX reads as negative through get<int64_t>: test it as unsigned first.
  const bool too_big =
      v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max);
  if (!too_big) out = v.get<std::int64_t>();
  if (too_big || out < min || out > max) {
    error = "'" + key + "' must be between " + std::to_string(min) + " and " + std::to_string(max);
    return false;
  }
  return true;
}

bool parse_alert_args(const nlohmann::json& args, CityCommand& c, std::string& error) {
  for (auto it = args.begin(); it != args.end(); ++it) {
    const std::string key = "args." + it.key();
    if (it.key() == "alert_id") {
      if (!get_string(it.value(), key, 1, 64, c.alert_id, error)) return false;
      if (!printable(c.alert_id) || c.alert_id.find_first_of("/+#") != std::string::npos) {
        error = "'args.alert_id' is not an alert id";
        return false;
      }
    } else if (it.key() == "note") {
      if (!get_string(it.value(), key, 0, 1000, c.note, error)) return false;
    } else {
      error = "unknown member '" + key + "' (expected alert_id, note)";
      return false;
    }
  }
  if (c.alert_id.empty()) {
    error = "'args.alert_id' is required";
    return false;
  }
  return true;
}

}  // namespace

bool parse_evidence_args(const nlohmann::json& args, EvidenceRequest& r, std::string& error) {
  if (!args.is_object()) {
    error = "'args' must be an object";
    return false;
  }
  for (auto it = args.begin(); it != args.end(); ++it) {
    const std::string key = "args." + it.key();
    if (it.key() == "alert_id") {
      if (!get_string(it.value(), key, 1, 64, r.alert_id, error)) return false;
      if (!printable(r.alert_id) || r.alert_id.find_first_of("/+#") != std::string::npos) {
        error = "'args.alert_id' is not an alert id";
        return false;
      }
    } else if (it.key() == "reason") {
      if (!get_string(it.value(), key, 1, 500, r.reason, error)) return false;
    } else {
      error = "unknown member '" + key.substr(0, 64) + "' (expected alert_id, reason)";
      return false;
    }
  }
  for (const auto& [have, what] :
       {std::pair{!r.alert_id.empty(), "alert_id"}, std::pair{!r.reason.empty(), "reason"}})
    if (!have) {
      error = std::string("'args.") + what + "' is required (why the evidence is released)";
      return false;
    }
  return true;
}

namespace {

bool parse_query_args(const nlohmann::json& args, EventsQuery& q, std::string& error) {
  for (auto it = args.begin(); it != args.end(); ++it) {
    const std::string key = "args." + it.key();
    if (it.key() == "after_seq") {
      if (!get_int(it.value(), key, 0, INT64_MAX, q.after_seq, error)) return false;
    } else if (it.key() == "limit") {
      std::int64_t limit = 0;
      if (!get_int(it.value(), key, 1, kMaxQueryLimit, limit, error)) return false;
      q.limit = static_cast<int>(limit);
    } else if (it.key() == "since_ms") {
      std::int64_t since = 0;
      if (!get_int(it.value(), key, 0, INT64_MAX, since, error)) return false;
      q.since_ms = since;
    } else if (it.key() == "kind") {
      std::string kind;
      if (!get_string(it.value(), key, 1, 64, kind, error)) return false;
      q.kind = anju::edge::event_kind_from_string(kind);
      if (!q.kind) {
        error = "'args.kind': unknown event kind '" + kind + "'";
        return false;
      }
    } else {
      error = "unknown member '" + key + "' (expected after_seq, since_ms, kind, limit)";
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<CityCommandName> city_command_from_string(std::string_view name) {
  for (const auto& [n, s] : kNames)
    if (s == name) return n;
  return std::nullopt;
}

std::string_view to_string(CityCommandName name) {
  for (const auto& [n, s] : kNames)
    if (n == name) return s;
  return "?";
}

bool needs_authorization(CityCommandName name) {
  return name == CityCommandName::config_apply || name == CityCommandName::rules_update ||
         name == CityCommandName::credentials_sync || name == CityCommandName::evidence_request;
}

CityCommandParse parse_city_command(std::string_view name, std::string_view payload,
                                    std::int64_t now_ms) {
  CityCommandParse r;
  // A signed command carries its arguments in its token: it may be larger (a credentials list).
  const auto known = city_command_from_string(name);
  const std::size_t max_bytes =
      known && needs_authorization(*known) ? kMaxSignedCityCommandBytes : kMaxCityCommandBytes;
  const auto parsed = edge::parse_command_object(payload, max_bytes, r.error);
  if (!parsed) return r;
  const auto& j = *parsed;
  // What is needed to answer a refusal, read first and leniently.
  if (auto it = j.find("request_id"); it != j.end() && it->is_string() && it->size() <= 128)
    r.request_id = it->get<std::string>();
  if (auto it = j.find("reply_to"); it != j.end() && it->is_string()) {
    const auto t = it->get<std::string>();
    if (!t.empty() && t.size() <= 512 && t.find_first_of("+#") == std::string::npos) r.reply_to = t;
  }
  const auto cmd_name = city_command_from_string(name);
  if (!cmd_name) {
    const std::string_view shown = name.substr(0, 64);
    r.error = "unknown command '" + (printable(shown) ? std::string(shown) : "(not ASCII)") +
              "' (expected alert.ack, alert.close, config.apply, rules.update, "
              "credentials.sync, events.query, evidence.request or diag)";
    return r;
  }
  CityCommand c;
  c.name = *cmd_name;
  bool have_schema = false, have_expiry = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = it.key();
    const auto& v = it.value();
    std::string& e = r.error;
    if (key == "schema") {
      if (!v.is_number_integer() || v.get<std::int64_t>() != 1) {
        e = "'schema' must be 1 (this gateway speaks contract v1)";
        return r;
      }
      have_schema = true;
    } else if (key == "request_id") {
      if (!get_string(v, key, 1, 128, c.request_id, e)) return r;
      if (!printable(c.request_id)) {
        e = "'request_id' must be printable ASCII";
        return r;
      }
    } else if (key == "user") {
      if (!get_string(v, key, 1, 128, c.user, e)) return r;
    } else if (key == "issued_ms") {
      if (!get_int(v, key, 0, INT64_MAX, c.issued_ms, e)) return r;
    } else if (key == "expires_ms") {
      if (!get_int(v, key, 0, INT64_MAX, c.expires_ms, e)) return r;
      have_expiry = true;
    } else if (key == "reply_to") {
      if (!get_string(v, key, 1, 512, c.reply_to, e)) return r;
      if (c.reply_to.find_first_of("+#") != std::string::npos) {
        e = "'reply_to' must be a topic, not a filter (no + or #)";
        return r;
      }
    } else if (key == "args") {
      if (!v.is_object()) {
        e = "'args' must be an object";
        return r;
      }
      c.args = v;
    } else if (key == "authorization") {
      if (!get_string(v, key, 1, kMaxCityTokenBytes, c.authorization, e)) return r;
    } else {
      e = "unknown member '" + key +
          "' (expected schema, request_id, user, issued_ms, expires_ms, reply_to, args, "
          "authorization)";
      return r;
    }
  }
  for (const auto& [have, what] :
       {std::pair{have_schema, "schema"}, std::pair{!c.request_id.empty(), "request_id"},
        std::pair{!c.user.empty(), "user"}, std::pair{have_expiry, "expires_ms"}}) {
    if (!have) {
      r.error = std::string("'") + what + "' is required";
      return r;
    }
  }
  if (now_ms > c.expires_ms) {
    r.error = "command expired " + std::to_string((now_ms - c.expires_ms) / 1000) +
              " s ago (expires_ms " + std::to_string(c.expires_ms) + ")";
    return r;
  }
  if (needs_authorization(c.name) && c.authorization.empty()) {
    r.error = "unauthorised: " + std::string(to_string(c.name)) +
              " needs the city's signed 'authorization' token";
    return r;
  }
  if (needs_authorization(c.name) && !c.args.empty()) {
    // What is applied must be what the city signed: the arguments travel inside the token.
    r.error = "'args' of " + std::string(to_string(c.name)) +
              " go inside the 'authorization' token, not beside it";
    return r;
  }
  switch (c.name) {
    case CityCommandName::alert_ack:
    case CityCommandName::alert_close:
      if (!parse_alert_args(c.args, c, r.error)) return r;
      break;
    case CityCommandName::events_query:
      if (!parse_query_args(c.args, c.query, r.error)) return r;
      break;
    case CityCommandName::diag:
      if (!c.args.empty()) {
        r.error = "diag takes no args";
        return r;
      }
      break;
    default:
      break;
  }
  r.command = std::move(c);
  return r;
}

std::string city_command_response(const std::string& site, const std::string& request_id,
                                  std::int64_t ts_ms, bool ok, bool duplicate,
                                  const std::string& error, const nlohmann::json& result, int page,
                                  bool last) {
  nlohmann::json j{
      {"schema", 1},  {"request_id", request_id.empty() ? std::string("?") : request_id},
      {"site", site}, {"ts_ms", ts_ms},
      {"ok", ok},     {"duplicate", duplicate}};
  if (!error.empty()) j["error"] = error;
  if (result.is_object()) j["result"] = result;
  if (page >= 0) {
    j["page"] = page;
    j["last"] = last;
  }
  // Whatever went into the error text, the answer is valid UTF-8 JSON.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace anju::bridge
