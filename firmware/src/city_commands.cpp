#include "anju/firmware/city_commands.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <set>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/city_command.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/evidence_store.hpp"
#include "anju/edge/journal.hpp"

namespace anju::firmware {

using nlohmann::json;

CityCommands::CityCommands(CityCommandContext ctx, edge::Pipeline& pipeline,
                           const edge::Clock& clock)
    : ctx_(std::move(ctx)),
      pipeline_(pipeline),
      clock_(clock),
      prefix_("anju/v1/" + ctx_.site + "/cmd/") {}

CityCommandStats CityCommands::stats() const {
  return {received_.load(), refused_.load(), unanswerable_.load()};
}

void CityCommands::answer(const std::string& topic, const std::string& corr,
                          const std::string& request_id, bool ok, bool duplicate,
                          const std::string& error, const json& result, int page, bool last) {
  if (topic.empty()) return;
  ctx_.respond(topic,
               bridge::city_command_response(ctx_.site, request_id, clock_.wall_ms(), ok, duplicate,
                                             error, result, page, last),
               corr);
}

// Every command from the city, accepted or not, is an audit event in the journal: who (the
// city's user), what, its request id and the outcome.
void CityCommands::audit(const std::string& command, const std::string& request_id,
                         const std::string& user, bool ok, const std::string& error,
                         const json& extra) {
  edge::Event e = edge::gateway_event(edge::EventKind::audit, clock_);
  e.site = ctx_.site;
  e.severity = 4;
  e.source = "city";
  e.attrs = {{"via", "city"}, {"action", command}, {"user", user}, {"ok", ok}};
  if (!request_id.empty()) e.attrs["request_id"] = request_id;
  if (!error.empty()) e.attrs["reason"] = error;
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) e.attrs[it.key()] = it.value();
  if (!pipeline_.submit(std::move(e)))
    spdlog::warn("city command {} ({}): audit not journaled (stopping)", command, request_id);
}

void CityCommands::handle(const edge::LocalBus::Message& m) {
  ++received_;
  if (m.topic.compare(0, prefix_.size(), prefix_) != 0) {
    spdlog::warn("city command on {} ignored: not this gateway's command topic", m.topic);
    return;
  }
  // The topic level goes into logs and the audit event: printable ASCII only.
  // A broker that maps '.' to a topic level (RabbitMQ) delivers cmd/alert.ack as cmd/alert/ack.
  std::string name = m.topic.substr(prefix_.size(), 64);
  for (char& ch : name)
    if (ch == '/')
      ch = '.';
    else if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e)
      ch = '?';
  auto parsed = bridge::parse_city_command(name, m.payload, clock_.wall_ms());
  std::string reply = m.response_topic.empty() ? parsed.reply_to : m.response_topic;
  const std::string corr = m.correlation_data;
  if (reply.empty()) ++unanswerable_;
  if (!parsed.command) {
    ++refused_;
    spdlog::warn("city command {} (request {}) refused: {}", name,
                 parsed.request_id.empty() ? "?" : parsed.request_id, parsed.error);
    audit(name, parsed.request_id, "", false, parsed.error);
    answer(reply, corr, parsed.request_id, false, false, parsed.error);
    return;
  }
  auto& c = *parsed.command;
  const std::string cmd_name(bridge::to_string(c.name));
  spdlog::info("city command {} (request {}) from {}", cmd_name, c.request_id, c.user);
  auto refuse = [&](const std::string& error) {
    ++refused_;
    spdlog::warn("city command {} (request {}) refused: {}", cmd_name, c.request_id, error);
    audit(cmd_name, c.request_id, c.user, false, error);
    answer(reply, corr, c.request_id, false, false, error);
  };
  if (bridge::needs_authorization(c.name)) {
    if (!ctx_.city_key)
      return refuse(
          "unauthorised: this gateway has no key to check the city's token with "
          "(uplink.command_key_file)");
    auto token = bridge::verify_city_token(c.authorization, *ctx_.city_key, ctx_.site, cmd_name,
                                           c.request_id, clock_.wall_ms());
    if (!token.claims) return refuse("unauthorised: " + token.error);
    c.args = std::move(token.claims->args);
  }

  switch (c.name) {
    case bridge::CityCommandName::alert_ack:
    case bridge::CityCommandName::alert_close: {
      audit(cmd_name, c.request_id, c.user, true, "");
      edge::AlertCommand ac;
      // Namespaced: a city request id never collides with a local one.
      ac.request_id = "city:" + c.request_id;
      ac.alert_id = c.alert_id;
      ac.action = c.name == bridge::CityCommandName::alert_ack ? edge::AlertAction::ack
                                                               : edge::AlertAction::close;
      ac.user = c.user;
      ac.via = "city";
      ac.note = c.note;
      ac.expires_ms = c.expires_ms;
      const std::string rid = c.request_id;
      const bool accepted = pipeline_.submit_command(
          std::move(ac), [this, reply, corr, rid](const edge::CommandResult& r, bool duplicate) {
            json result;
            if (r.alert)
              result = {{"alert_id", r.alert->alert_id},
                        {"state", r.alert->state},
                        {"version", r.alert->version}};
            if (!r.ok) spdlog::warn("city command {} refused: {}", rid, r.error);
            answer(reply, corr, rid, r.ok, duplicate, r.error, result);
          });
      if (!accepted) answer(reply, corr, rid, false, false, "stopping");
      return;
    }
    case bridge::CityCommandName::diag: {
      audit(cmd_name, c.request_id, c.user, true, "");
      json result = ctx_.status ? ctx_.status() : json::object();
      result["version"] = ANJU_VERSION;
      answer(reply, corr, c.request_id, true, false, "", result);
      return;
    }
    case bridge::CityCommandName::events_query: {
      edge::EventQuery q;
      q.seq_from = c.query.after_seq + 1;
      q.since_ms = c.query.since_ms;
      q.kind = c.query.kind;
      q.limit = c.query.limit;
      std::vector<edge::Event> events;
      try {
        events = edge::query_events(edge::open_reader(ctx_.db_path), q);
      } catch (const std::exception& e) {
        const std::string error = std::string("journal not readable: ") + e.what();
        audit(cmd_name, c.request_id, c.user, false, error);
        answer(reply, corr, c.request_id, false, false, error);
        return;
      }
      audit(cmd_name, c.request_id, c.user, true, "");
      // Pages of kQueryPageSize, each a message of its own; the last says so. The events are the
      // uplink's payloads: what the city may see of an event, and nothing more.
      const std::size_t pages = std::max<std::size_t>(
          1, (events.size() + bridge::kQueryPageSize - 1) / bridge::kQueryPageSize);
      for (std::size_t p = 0; p < pages; ++p) {
        json list = json::array();
        std::int64_t last_seq = c.query.after_seq;
        for (std::size_t i = p * bridge::kQueryPageSize;
             i < std::min(events.size(), (p + 1) * bridge::kQueryPageSize); ++i) {
          list.push_back(bridge::event_payload(events[i], ctx_.division_code));
          last_seq = events[i].seq;
        }
        json result{{"events", list}, {"next_after_seq", last_seq}};
        answer(reply, corr, c.request_id, true, false, "", result, static_cast<int>(p),
               p + 1 == pages);
      }
      return;
    }
    case bridge::CityCommandName::credentials_sync: {
      if (!ctx_.credentials_sync)
        return refuse("this gateway has no access control configured (access in anju.yaml)");
      std::string error;
      bool duplicate = false;
      const json result = ctx_.credentials_sync(c.args, error, duplicate);
      if (!error.empty()) return refuse(error);
      audit(cmd_name, c.request_id, c.user, true, "");
      answer(reply, corr, c.request_id, true, duplicate, "", result);
      return;
    }
    case bridge::CityCommandName::evidence_request: {
      bridge::EvidenceRequest ev;
      std::string error;
      if (!bridge::parse_evidence_args(c.args, ev, error)) return refuse(error);
      json result = release_evidence(ev, error);
      if (!error.empty()) {
        ++refused_;
        spdlog::warn("city command {} (request {}) refused: {}", cmd_name, c.request_id, error);
        audit(cmd_name, c.request_id, c.user, false, error,
              {{"alert_id", ev.alert_id}, {"why", ev.reason}});
        answer(reply, corr, c.request_id, false, false, error);
        return;
      }
      spdlog::warn("city command {} (request {}): evidence {} of alert {} released to {} ({})",
                   cmd_name, c.request_id, result.value("evidence_id", ""), ev.alert_id, c.user,
                   ev.reason);
      audit(cmd_name, c.request_id, c.user, true, "",
            {{"alert_id", ev.alert_id},
             {"why", ev.reason},
             {"evidence", result.value("evidence_id", "")},
             {"bytes", result.value("bytes", 0)}});
      answer(reply, corr, c.request_id, true, false, "", result);
      return;
    }
    case bridge::CityCommandName::config_apply:
    case bridge::CityCommandName::rules_update: {
      if (!ctx_.stage_trial || !ctx_.check_config || !ctx_.config_text || !ctx_.restart)
        return refuse(cmd_name + " is not available on this gateway");
      if (auto known = known_config_request(ctx_.data_dir, c.request_id)) {
        audit(cmd_name, c.request_id, c.user, true, "", {{"duplicate", true}});
        answer(reply, corr, c.request_id, true, true, "", {{"state", "known"}});
        return;
      }
      std::string yaml;
      int timeout_s = kDefaultHealthTimeoutS;
      const std::string error =
          c.name == bridge::CityCommandName::config_apply
              ? parse_config_apply_args(c.args, yaml, timeout_s)
              : rules_update_yaml(ctx_.config_text(), c.args, yaml, timeout_s);
      if (!error.empty()) return refuse(error);
      const auto problems = ctx_.check_config(yaml);
      if (!problems.empty()) {
        std::string text = "the new config is not valid (" + std::to_string(problems.size()) +
                           (problems.size() == 1 ? " problem): " : " problems): ");
        for (std::size_t i = 0; i < problems.size() && i < 20; ++i)
          text += (i ? "; " : "") + problems[i];
        return refuse(text);
      }
      ConfigRequest request{cmd_name, c.request_id, c.user,           reply,
                            corr,     timeout_s,    clock_.wall_ms(), 0};
      if (auto e = ctx_.stage_trial(yaml, request); !e.empty())
        return refuse("the new config cannot be kept on the gateway: " + e);
      spdlog::warn(
          "city command {} (request {}) from {}: restarting with the new config on trial; kept "
          "only if the city broker is reached within {} s",
          cmd_name, c.request_id, c.user, timeout_s);
      audit(cmd_name, c.request_id, c.user, true, "",
            {{"state", "trial"}, {"health_timeout_s", timeout_s}});
      answer(reply, corr, c.request_id, true, false, "",
             {{"state", "trial"}, {"health_timeout_s", timeout_s}}, 0, false);
      ctx_.restart();
      return;
    }
    default: {
      const std::string error = cmd_name + " is not supported by this gateway version";
      ++refused_;
      audit(cmd_name, c.request_id, c.user, false, error);
      answer(reply, corr, c.request_id, false, false, error);
      return;
    }
  }
}

bool CityCommands::report_config_outcome(const ConfigOutcome& o) {
  const auto& r = o.request;
  if (o.ok)
    spdlog::info("city command {} (request {}): the new config is kept", r.command, r.request_id);
  else
    spdlog::error("city command {} (request {}): the new config was rolled back: {}", r.command,
                  r.request_id, o.error);
  audit(r.command, r.request_id, r.user, o.ok, o.error, config_outcome_result(o));
  if (r.reply_topic.empty()) return true;
  return ctx_.respond(
      r.reply_topic,
      bridge::city_command_response(ctx_.site, r.request_id, clock_.wall_ms(), o.ok, false, o.error,
                                    config_outcome_result(o), 1, true),
      r.correlation_data);
}

json CityCommands::release_evidence(const bridge::EvidenceRequest& r, std::string& error) {
  const std::int64_t now = clock_.wall_ms();
  while (!releases_.empty() && releases_.front() <= now - 3'600'000) releases_.pop_front();
  if (static_cast<int>(releases_.size()) >= ctx_.evidence_per_hour) {
    error = "rate limit: " + std::to_string(releases_.size()) +
            " evidence releases in the last hour (uplink.evidence_per_hour: " +
            std::to_string(ctx_.evidence_per_hour) + ")";
    return {};
  }
  std::optional<edge::Alert> alert;
  std::set<std::string> evidence;
  try {
    auto db = edge::open_reader(ctx_.db_path);
    auto st = db.prepare("SELECT body FROM alerts WHERE alert_id=?1");
    st.bind(1, r.alert_id);
    if (st.step()) alert = edge::alert_from_json(json::parse(st.str(0), nullptr, false));
    if (alert)
      evidence = edge::alert_evidence(*alert, edge::alert_events(db, *alert), ctx_.evidence_dir);
  } catch (const std::exception& e) {
    error = std::string("journal not readable: ") + e.what();
    return {};
  }
  if (!alert) {
    error = "no alert " + r.alert_id;
    return {};
  }
  if (evidence.empty()) {
    error = "alert " + r.alert_id + " has no camera evidence on the gateway";
    return {};
  }
  const std::string id = *evidence.begin();
  std::ifstream in(ctx_.evidence_dir + "/" + id + "/snapshot.jpg", std::ios::binary);
  const std::string jpeg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    error = "the snapshot of evidence " + id + " cannot be read";
    return {};
  }
  releases_.push_back(now);
  return {{"alert_id", r.alert_id},
          {"evidence_id", id},
          {"content_type", "image/jpeg"},
          {"bytes", jpeg.size()},
          {"snapshot_base64url", bridge::base64url_encode(jpeg)}};
}

}  // namespace anju::firmware
