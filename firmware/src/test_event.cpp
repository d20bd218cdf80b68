#include "anju/firmware/test_event.hpp"

#include <time.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "anju/edge/journal.hpp"
#include "anju/edge/uuid.hpp"

namespace anju::firmware {

using nlohmann::json;

std::int64_t TestEventTracker::now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void TestEventTracker::follow(const std::string& event_id, std::int64_t submitted_ns) {
  std::lock_guard lock(mu_);
  Trace t;
  t.event_id = event_id;
  t.submitted_ns = submitted_ns;
  traces_[event_id] = t;
}

void TestEventTracker::forget(const std::string& event_id) {
  std::lock_guard lock(mu_);
  traces_.erase(event_id);
}

void TestEventTracker::after_commit(const std::vector<edge::Event>& events,
                                    const std::vector<edge::AlertChange>& changes) {
  std::lock_guard lock(mu_);
  if (traces_.empty()) return;
  const std::int64_t now = now_ns();
  bool any = false;
  for (const auto& e : events)
    if (auto it = traces_.find(e.id); it != traces_.end() && it->second.committed_ns == 0) {
      it->second.committed_ns = now;
      it->second.seq = e.seq;
      any = true;
    }
  for (const auto& c : changes) {
    if (!c.alert.test || c.type != edge::AlertChangeType::raised) continue;
    for (const auto& id : c.alert.event_ids)
      if (auto it = traces_.find(id); it != traces_.end() && it->second.raised_ns == 0) {
        it->second.raised_ns = now;
        it->second.alert_id = c.alert.alert_id;
        it->second.alert_topic_kind = std::string(to_string(c.alert.kind));
        any = true;
      }
  }
  if (any) cv_.notify_all();
}

void TestEventTracker::alert_queued(const edge::AlertChange& c, std::int64_t oid) {
  if (!c.alert.test || c.type != edge::AlertChangeType::raised) return;
  std::lock_guard lock(mu_);
  for (const auto& id : c.alert.event_ids)
    if (auto it = traces_.find(id); it != traces_.end() && it->second.acked_ns == 0) {
      // A batch rolled back and retried writes a new row: the latest is the one to follow.
      it->second.oid = oid;
      it->second.queued_ns = now_ns();
    }
}

void TestEventTracker::acked(const std::vector<std::pair<std::int64_t, bridge::MsgClass>>& rows) {
  std::lock_guard lock(mu_);
  if (traces_.empty()) return;
  const std::int64_t now = now_ns();
  bool any = false;
  for (auto& [id, t] : traces_) {
    if (t.oid == 0 || t.acked_ns != 0) continue;
    for (const auto& [oid, cls] : rows)
      if (oid == t.oid && cls == bridge::MsgClass::alert) {
        t.acked_ns = now;
        any = true;
      }
  }
  if (any) cv_.notify_all();
}

void run_test_event(const ControlRequest& request, TestEventContext& ctx,
                    const std::function<bool(const json&)>& send) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::milliseconds(request.timeout_ms);
  auto finish = [&](bool ok, const std::string& error) {
    json d{{"done", true}, {"ok", ok}};
    if (!error.empty()) d["error"] = error;
    send(d);
  };

  // Plan: the target among the devices the journal knows, and the alarm kind it stands for.
  std::vector<edge::DeviceRecord> devices;
  std::map<std::string, std::vector<std::string>> kinds_seen;
  try {
    auto db = edge::open_reader(ctx.db_path);
    devices = edge::load_devices(db);
    for (const auto& d : devices) {
      if (d.device.id != request.target && d.device.name != request.target) continue;
      auto st = db.prepare(
          "SELECT kind FROM events WHERE device_id=? AND seq>=(SELECT coalesce(max(seq),0) FROM "
          "events)-100000 ORDER BY seq DESC");
      st.bind(1, d.device.id);
      auto& seen = kinds_seen[d.device.id];
      while (st.step())
        if (std::find(seen.begin(), seen.end(), st.str(0)) == seen.end()) seen.push_back(st.str(0));
    }
  } catch (const std::exception& e) {
    return finish(false, std::string("cannot read the journal: ") + e.what());
  }
  auto plan = plan_test_event(request, devices, kinds_seen, ctx.site, ctx.grid_code);
  if (!plan.event) return finish(false, plan.error);
  edge::Event e = std::move(*plan.event);
  e.ts_ms = ctx.clock.wall_ms();
  e.mono_ns = ctx.clock.mono_ns();
  e.boot_id = edge::boot_id();
  e.clock_synced = ctx.clock.synced();
  e.id = edge::uuid_v7(e.ts_ms);
  const std::string kind = e.attrs.value("alert_kind", "gateway_test");

  ctx.tracker.follow(e.id, e.mono_ns);
  struct Forget {
    TestEventTracker& t;
    std::string id;
    ~Forget() { t.forget(id); }
  } forget{ctx.tracker, e.id};
  auto ms = [&](std::int64_t ns) { return static_cast<double>(ns - e.mono_ns) / 1e6; };
  auto stopped = [&] { return ctx.stopping && ctx.stopping->load(); };
  send({{"hop", "submitted"},
        {"event_id", e.id},
        {"device", e.device.id},
        {"name", e.device.name},
        {"kind", kind},
        {"test", true}});
  if (!ctx.pipeline.submit(e)) return finish(false, "anjud is stopping");

  auto t = ctx.tracker.wait(e.id, deadline, [&](const TestEventTracker::Trace& x) {
    return x.committed_ns != 0 || stopped();
  });
  if (t.committed_ns == 0) return finish(false, "not journaled in time (is the disk full?)");
  send({{"hop", "journaled"}, {"seq", t.seq}, {"ms", ms(t.committed_ns)}});
  t = ctx.tracker.wait(e.id, deadline, [&](const TestEventTracker::Trace& x) {
    return x.raised_ns != 0 || stopped();
  });
  if (t.raised_ns == 0) return finish(false, "the rules raised no test alert");
  send({{"hop", "alert"},
        {"alert_id", t.alert_id},
        {"local_topic", "anju/" + ctx.site + "/alert/" + t.alert_id},
        {"ms", ms(t.raised_ns)}});
  bool acked = false;
  std::string error;
  if (t.oid == 0) {
    error = "the alert was not queued for the city";
  } else {
    send(
        {{"hop", "outbox"},
         {"oid", t.oid},
         {"city_topic", "anju/v1/" + ctx.site + "/alert/" + t.alert_topic_kind},
         {"ms", ms(std::max(t.queued_ns, t.committed_ns))}});  // written in, durable at, the commit
    if (!ctx.uplink_enabled) {
      error = "the uplink is disabled (uplink.enabled: false): the alert waits in the outbox";
    } else {
      // Wait for the city broker's PUBACK, saying once when the link is down meanwhile.
      bool said_down = false;
      for (;;) {
        const auto step =
            std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
        t = ctx.tracker.wait(e.id, step, [&](const TestEventTracker::Trace& x) {
          return x.acked_ns != 0 || stopped();
        });
        if (t.acked_ns != 0 || stopped() || std::chrono::steady_clock::now() >= deadline) break;
        const json link = ctx.link_state ? ctx.link_state() : json::object();
        if (!said_down && !link.value("connected", false)) {
          send({{"hop", "waiting"},
                {"why", "the city link is down: " + link.value("last_error", std::string("?"))}});
          said_down = true;
        }
      }
      if (t.acked_ns != 0) {
        acked = true;
        send({{"hop", "city"}, {"puback", true}, {"ms", ms(t.acked_ns)}});
      } else {
        error = stopped() ? "anjud is stopping"
                          : "no acknowledgement from the city broker within " +
                                std::to_string(request.timeout_ms / 1000) +
                                " s; the alert stays in the outbox and is sent when the link is up";
      }
    }
  }

  // Close the test alert either way: nobody is to act on it. Its close goes to the city too.
  edge::AlertCommand close;
  close.request_id = "test:" + e.id;
  close.alert_id = t.alert_id;
  close.action = edge::AlertAction::close;
  close.user = "installer";
  close.via = "installer";
  close.note = acked ? "test complete: acknowledged by the city broker" : "test ended: " + error;
  // Shared with the callback: the pipeline may run it after this function gave up waiting.
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<edge::CommandResult> result;
  };
  auto done = std::make_shared<Done>();
  const bool submitted =
      ctx.pipeline.submit_command(close, [done](const edge::CommandResult& r, bool) {
        std::lock_guard lock(done->mu);
        done->result = r;
        done->cv.notify_all();
      });
  std::optional<edge::CommandResult> result;
  {
    std::unique_lock lock(done->mu);
    if (submitted)
      done->cv.wait_for(lock, std::chrono::seconds(10), [&] { return done->result.has_value(); });
    result = done->result;
  }
  if (result && result->ok)
    send({{"hop", "closed"}, {"alert_id", t.alert_id}, {"note", close.note}});
  else
    send({{"hop", "closed"},
          {"alert_id", t.alert_id},
          {"error", result ? result->error : std::string("not closed in time")}});
  finish(acked, error);
}

}  // namespace anju::firmware
