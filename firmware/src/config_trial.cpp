#include "anju/firmware/config_trial.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "anju/bridge/city_token.hpp"
#include "anju/edge/files.hpp"

namespace anju::firmware {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxConfigBytes = 48 * 1024;  // inside a 60 KB token, base64url-encoded

std::string in_dir(const std::string& data_dir, const char* name) {
  return (fs::path(data_dir) / name).string();
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

json request_json(const ConfigRequest& r) {
  return {{"command", r.command},
          {"request_id", r.request_id},
          {"user", r.user},
          {"reply_topic", r.reply_topic},
          {"correlation_data", bridge::base64url_encode(r.correlation_data)},
          {"health_timeout_s", r.health_timeout_s},
          {"applied_ms", r.applied_ms},
          {"starts", r.starts}};
}

// Our own files; a member that is missing or of the wrong type makes the whole file unusable.
std::optional<ConfigRequest> request_from(const json& j) {
  if (!j.is_object()) return std::nullopt;
  try {
    ConfigRequest r;
    r.command = j.at("command").get<std::string>();
    r.request_id = j.at("request_id").get<std::string>();
    r.user = j.at("user").get<std::string>();
    r.reply_topic = j.at("reply_topic").get<std::string>();
    auto corr = bridge::base64url_decode(j.at("correlation_data").get<std::string>());
    if (!corr) return std::nullopt;
    r.correlation_data = std::move(*corr);
    r.health_timeout_s = j.at("health_timeout_s").get<int>();
    r.applied_ms = j.at("applied_ms").get<std::int64_t>();
    r.starts = j.at("starts").get<int>();
    return r;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

std::optional<ConfigRequest> read_request(const std::string& path) {
  auto text = read_text(path);
  if (!text) return std::nullopt;
  return request_from(json::parse(*text, nullptr, false));
}

std::string write_json(const std::string& path, const json& j) {
  return edge::write_file_atomic(path, j.dump(2) + "\n", 0640);
}

std::string rename_file(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  return ec ? "cannot rename " + from + " to " + to + ": " + ec.message() : "";
}

void remove_file(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

// The health timeout member both commands share.
std::string health_timeout(const json& args, int& out) {
  out = kDefaultHealthTimeoutS;
  if (!args.contains("health_timeout_s")) return "";
  const auto& t = args["health_timeout_s"];
  if (!t.is_number_integer() || t.get<std::int64_t>() < kMinHealthTimeoutS ||
      t.get<std::int64_t>() > kMaxHealthTimeoutS)
    return "args.health_timeout_s: expected whole seconds from " +
           std::to_string(kMinHealthTimeoutS) + " to " + std::to_string(kMaxHealthTimeoutS);
  out = t.get<int>();
  return "";
}

std::string only_members(const json& args, std::initializer_list<const char*> allowed) {
  if (!args.is_object()) return "args: expected an object";
  for (auto it = args.begin(); it != args.end(); ++it) {
    bool known = false;
    for (const char* a : allowed) known = known || it.key() == a;
    if (!known) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return "args: unknown member '" + it.key().substr(0, 64) + "' (expected " + list + ")";
    }
  }
  return "";
}

YAML::Node to_yaml(const json& j) {
  switch (j.type()) {
    case json::value_t::object: {
      YAML::Node n(YAML::NodeType::Map);
      for (auto it = j.begin(); it != j.end(); ++it) n[it.key()] = to_yaml(it.value());
      return n;
    }
    case json::value_t::array: {
      YAML::Node n(YAML::NodeType::Sequence);
      for (const auto& v : j) n.push_back(to_yaml(v));
      return n;
    }
    case json::value_t::string:
      return YAML::Node(j.get<std::string>());
    case json::value_t::boolean:
      return YAML::Node(j.get<bool>());
    case json::value_t::number_integer:
      return YAML::Node(j.get<std::int64_t>());
    case json::value_t::number_unsigned:
      return YAML::Node(j.get<std::uint64_t>());
    case json::value_t::number_float:
      return YAML::Node(j.get<double>());
    default:
      return YAML::Node(YAML::NodeType::Null);
  }
}

}  // namespace

std::vector<std::string> check_city_config(const std::string& yaml, const Config& running) {
  std::vector<std::string> errors;
  if (yaml.size() > kMaxConfigBytes) {
    errors.push_back("the config is " + std::to_string(yaml.size()) + " bytes; at most " +
                     std::to_string(kMaxConfigBytes) + " are accepted");
    return errors;
  }
  const auto parsed = parse_config(yaml, "<the city's config>");
  if (!parsed.config) {
    for (const auto& e : parsed.errors) errors.push_back(e.to_string());
    return errors;
  }
  const Config& c = *parsed.config;
  if (c.site.id != running.site.id)
    errors.push_back("site.id: '" + c.site.id + "' is not this gateway's site '" + running.site.id +
                     "' (a site is changed by provisioning, not remotely)");
  if (!c.uplink.enabled)
    errors.push_back(
        "uplink.enabled: false would cut this gateway off from the city; not applied remotely");
  return errors;
}

std::string parse_config_apply_args(const json& args, std::string& yaml, int& health_timeout_s) {
  if (auto e = only_members(args, {"config", "health_timeout_s"}); !e.empty()) return e;
  if (!args.contains("config") || !args["config"].is_string())
    return "args.config: expected the whole config as YAML text";
  if (auto e = health_timeout(args, health_timeout_s); !e.empty()) return e;
  yaml = args["config"].get<std::string>();
  return "";
}

std::string rules_update_yaml(const std::string& current_yaml, const json& args, std::string& yaml,
                              int& health_timeout_s) {
  if (auto e = only_members(args, {"rules", "health_timeout_s"}); !e.empty()) return e;
  if (!args.contains("rules") || !args["rules"].is_object())
    return "args.rules: expected the rules section as an object";
  if (auto e = health_timeout(args, health_timeout_s); !e.empty()) return e;
  try {
    YAML::Node root = YAML::Load(current_yaml);
    if (!root.IsMap()) return "the running config is not a YAML mapping";
    root["rules"] = to_yaml(args["rules"]);
    YAML::Emitter out;
    out << root;
    if (!out.good()) return std::string("the new config cannot be written: ") + out.GetLastError();
    yaml = std::string(out.c_str()) + "\n";
  } catch (const YAML::Exception& e) {
    return std::string("the running config cannot be read: ") + e.what();
  }
  return "";
}

std::string config_text(const Config& running) {
  if (running.source_file.empty() || running.source_file.front() == '<') return demo_config_text();
  auto text = read_text(running.source_file);
  return text ? *text : std::string();
}

std::string stage_config_trial(const std::string& data_dir, const std::string& yaml,
                               const ConfigRequest& request) {
  // The request first: a trial config without its request is never started.
  if (auto e = edge::write_file_atomic(in_dir(data_dir, "config.trial.yaml"), yaml, 0640);
      !e.empty())
    return e;
  ConfigRequest r = request;
  r.starts = 0;
  return write_json(in_dir(data_dir, "config.trial.json"), request_json(r));
}

std::optional<ConfigRequest> known_config_request(const std::string& data_dir,
                                                  const std::string& request_id) {
  for (const char* name : {"config.trial.json", "config.city.json"}) {
    auto r = read_request(in_dir(data_dir, name));
    if (r && r->request_id == request_id) return r;
  }
  if (auto o = pending_config_outcome(data_dir); o && o->request.request_id == request_id)
    return o->request;
  return std::nullopt;
}

namespace {

std::optional<Config> load_city(const std::string& path, const Config& base,
                                const std::function<void(Config&)>& adjust, std::string& error) {
  auto text = read_text(path);
  if (!text) {
    error = path + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  auto parsed = parse_config(*text, path);
  if (!parsed.config) {
    error = parsed.errors.empty() ? path + ": invalid" : parsed.errors.front().to_string();
    return std::nullopt;
  }
  Config c = std::move(*parsed.config);
  if (adjust) adjust(c);
  c.data_dir = base.data_dir;
  return c;
}

}  // namespace

StartConfig choose_start_config(const Config& base, const std::function<void(Config&)>& adjust) {
  StartConfig out;
  out.config = base;
  out.source = "file";
  const std::string dir = base.data_dir;
  const std::string trial_yaml = in_dir(dir, "config.trial.yaml");
  const std::string trial_json = in_dir(dir, "config.trial.json");
  if (fs::exists(trial_yaml) || fs::exists(trial_json)) {
    auto request = read_request(trial_json);
    std::string why;
    if (!request) {
      why = "its request (" + trial_json + ") is missing or unreadable";
    } else if (request->starts > 0) {
      why = "anjud stopped or crashed during the trial, before it reached the city broker";
    }
    std::optional<Config> trial;
    if (why.empty()) {
      trial = load_city(trial_yaml, base, adjust, why);
      if (!trial) why = "it cannot be loaded: " + why;
    }
    if (trial) {
      request->starts += 1;
      if (auto e = write_json(trial_json, request_json(*request)); !e.empty()) {
        // Without the count a crash would start it again and again: do not try it.
        why = "its start cannot be recorded: " + e;
      } else {
        out.config = std::move(*trial);
        out.source = "trial";
        out.trial = std::move(request);
        return out;
      }
    }
    if (request) {
      if (auto e = reject_config_trial(dir, why); !e.empty()) out.warnings.push_back(e);
    } else {
      remove_file(trial_yaml);
      remove_file(trial_json);
    }
    out.warnings.push_back("the city's new config was rolled back: " + why);
  }
  const std::string city_yaml = in_dir(dir, "config.city.yaml");
  if (fs::exists(city_yaml)) {
    std::string error;
    if (auto city = load_city(city_yaml, base, adjust, error)) {
      out.config = std::move(*city);
      out.source = "city";
    } else {
      out.warnings.push_back("the city's config is not used (" + error + "); running with " +
                             (base.source_file.empty() ? "the base config" : base.source_file));
    }
  }
  return out;
}

std::string confirm_config_trial(const std::string& data_dir) {
  auto request = read_request(in_dir(data_dir, "config.trial.json"));
  if (!request) return "no config on trial";
  // The outcome first: if the renames below are cut short, the city still hears it.
  ConfigOutcome o{*request, true, ""};
  json j = request_json(o.request);
  j["ok"] = true;
  if (auto e = write_json(in_dir(data_dir, "config.outcome.json"), j); !e.empty()) return e;
  if (auto e =
          rename_file(in_dir(data_dir, "config.trial.yaml"), in_dir(data_dir, "config.city.yaml"));
      !e.empty())
    return e;
  return rename_file(in_dir(data_dir, "config.trial.json"), in_dir(data_dir, "config.city.json"));
}

std::string reject_config_trial(const std::string& data_dir, const std::string& reason) {
  auto request = read_request(in_dir(data_dir, "config.trial.json"));
  if (request) {
    json j = request_json(*request);
    j["ok"] = false;
    j["error"] = reason;
    if (auto e = write_json(in_dir(data_dir, "config.outcome.json"), j); !e.empty()) return e;
  }
  std::string error;
  if (fs::exists(in_dir(data_dir, "config.trial.yaml")))
    error = rename_file(in_dir(data_dir, "config.trial.yaml"),
                        in_dir(data_dir, "config.rejected.yaml"));
  remove_file(in_dir(data_dir, "config.trial.json"));
  return error;
}

std::optional<ConfigOutcome> pending_config_outcome(const std::string& data_dir) {
  auto text = read_text(in_dir(data_dir, "config.outcome.json"));
  if (!text) return std::nullopt;
  const json j = json::parse(*text, nullptr, false);
  auto request = request_from(j);
  if (!request || !j.contains("ok") || !j["ok"].is_boolean()) return std::nullopt;
  ConfigOutcome o;
  o.request = std::move(*request);
  o.ok = j["ok"].get<bool>();
  if (j.contains("error") && j["error"].is_string()) o.error = j["error"].get<std::string>();
  return o;
}

void clear_config_outcome(const std::string& data_dir) {
  remove_file(in_dir(data_dir, "config.outcome.json"));
}

json config_outcome_result(const ConfigOutcome& outcome) {
  return {{"state", outcome.ok ? "applied" : "rolled_back"},
          {"health_timeout_s", outcome.request.health_timeout_s}};
}

}  // namespace anju::firmware
