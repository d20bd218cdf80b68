// The published city contract's JSON Schemas (docs/contract/schemas/*.json), loaded once from the
// source tree, and which schema a topic's payload must satisfy. Header-only, so that both the unit
// and the integration tests can use it.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/bridge/json_schema.hpp"

namespace anju::contract {

// docs/contract/ of the source tree this file belongs to.
inline std::filesystem::path contract_dir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "docs" /
         "contract";
}

inline std::vector<std::string> schema_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(contract_dir() / "schemas"))
    if (e.path().extension() == ".json") names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

inline nlohmann::json load_schema_file(const std::string& name) {
  std::ifstream in(contract_dir() / "schemas" / name);
  if (!in) throw std::runtime_error("cannot read schema " + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// Every schema, added by file name; throws when one does not load, has an error, or a $ref does
// not resolve.
inline const bridge::schema::SchemaSet& schemas() {
  static const bridge::schema::SchemaSet set = [] {
    bridge::schema::SchemaSet s;
    for (const auto& name : schema_names()) {
      const std::string err = s.add(name, load_schema_file(name));
      if (!err.empty()) throw std::runtime_error("schema " + name + ": " + err);
    }
    if (auto bad = s.unresolved_refs(); !bad.empty())
      throw std::runtime_error("unresolved $ref: " + bad.front());
    return s;
  }();
  return set;
}

// The schema of a contract topic's payload: anju/v1/<site>/<class>/<level>; "" when the topic is
// not part of the contract.
inline std::string schema_for_topic(const std::string& topic) {
  std::vector<std::string> levels;
  std::size_t pos = 0;
  while (true) {
    const auto slash = topic.find('/', pos);
    levels.push_back(topic.substr(pos, slash == std::string::npos ? slash : slash - pos));
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  if (levels.size() != 5 || levels[0] != "anju" || levels[1] != "v1" || levels[4].empty())
    return "";
  const std::string& cls = levels[3];
  if (cls == "alert") return "alert.json";
  if (cls == "event") return "event.json";
  if (cls == "summary") return "summary.json";
  if (cls == "status") return levels[4] == "gateway" ? "gateway_status.json" : "device_status.json";
  if (cls == "cmd") return "command_request.json";  // city to gateway
  return "";
}

// Validates a payload strictly (members the contract does not describe are errors) against the
// schema for its topic and against the common envelope; "" when valid, else what is wrong.
inline std::string check_uplink_message(const std::string& topic, const std::string& payload) {
  const std::string name = schema_for_topic(topic);
  if (name.empty()) return "topic " + topic + " is not in the contract";
  const auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded()) return "payload on " + topic + " is not JSON";
  bridge::schema::Options strict;
  strict.strict = true;
  auto issues = schemas().validate(name, j, strict);
  if (name != "command_request.json") {  // requests come from the city: no envelope
    auto env = schemas().validate("envelope.json", j);
    issues.insert(issues.end(), env.begin(), env.end());
  }
  if (issues.empty()) return "";
  return topic + " (" + name + "): " + bridge::schema::to_string(issues) + payload;
}

}  // namespace anju::contract
