// What the integration tests check on every message the city broker received: it is on a topic of
// the contract's tree and its payload validates strictly against the published schema
// (docs/contract/), so the document cannot drift from what a gateway sends.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "contract_schemas.hpp"
#include "harness.hpp"

namespace anju::contract {

// The city topic prefix of one class for a site: anju/v1/<site>/<cls>.
inline std::string city_class(const std::string& site, const std::string& cls) {
  return "anju/v1/" + site + "/" + cls;
}

// True when `topic` is one level below the class prefix `cls` (cls/<kind|device|period>).
inline bool under(const std::string& topic, const std::string& cls) {
  return topic.size() > cls.size() + 1 && topic.compare(0, cls.size(), cls) == 0 &&
         topic[cls.size()] == '/' && topic.find('/', cls.size() + 1) == std::string::npos;
}

// Every message validates against the contract; the first few problems are reported.
inline void check_city_contract(const std::vector<anju::it::Message>& ms) {
  std::size_t invalid = 0;
  for (const auto& m : ms) {
    const std::string problem = check_uplink_message(m.topic, m.payload);
    if (!problem.empty() && ++invalid <= 5) FAIL_CHECK(problem);
  }
  CHECK(invalid == 0);
}

// A command's answer validates strictly against command_response.json.
inline void check_command_answer(const nlohmann::json& body) {
  anju::bridge::schema::Options strict;
  strict.strict = true;
  const auto issues = schemas().validate("command_response.json", body, strict);
  INFO(body.dump());
  CHECK(anju::bridge::schema::to_string(issues).empty());
}

// The audit events of the city's commands in a gateway's journal, by action and outcome.
inline std::int64_t city_audits(const anju::it::Anjud& gw, const std::string& action, bool ok) {
  return anju::it::sql_i64(
      gw.db_path(),
      "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), "
      "'$.kind')='audit' AND json_extract(anju_event_json(body), '$.attrs.via')='city' "
      "AND json_extract(anju_event_json(body), '$.attrs.action')='" +
          action + "' AND json_extract(anju_event_json(body), '$.attrs.ok')=" + (ok ? "1" : "0"));
}

}  // namespace anju::contract
