// The dashboard served by anjud: pages (built into the binary, or from dashboard.assets_dir), a
// JSON API with sessions, CSRF tokens, roles and login lockout, open alerts live over
// Server-Sent Events, /healthz and /metrics (Prometheus text).
//
// It plugs into the pipeline as a PipelineHook: after_commit keeps its own snapshot of the open
// alerts and of the devices, counts events by kind and queues each alert change for every stream
// client (a bounded queue per client; a client that falls behind is dropped, the pipeline thread
// never waits). Actions go through Pipeline::submit_command and logins/logouts/actions are
// journaled as `audit` events through Pipeline::submit: the journal stays the single writer.
// Reads (alert detail, event search) use their own read-only SQLite connection per request.
//
// Thread: after_commit on the pipeline thread; HTTP handlers on cpp-httplib's worker pool (one
// worker per open event stream); start/stop on the main thread. State shared between them is
// behind mu_ (alerts, devices, stream clients, counters) and auth_mu_ (sessions, lockout).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/clock.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/dashboard_logic.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace anju::firmware {

// A page asset built into the binary (generated from firmware/web/ at configure time).
struct EmbeddedAsset {
  std::string_view path;  // "/index.html", "/app.js", ...
  std::string_view content_type;
  std::string_view data;
};
const std::vector<EmbeddedAsset>& embedded_assets();

struct DashboardOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string tls_cert, tls_key;  // both set: HTTPS
  std::string users_file;
  std::string assets_dir;  // empty: embedded assets
  std::int64_t session_ttl_ms = 8LL * 3600 * 1000;
  int lockout_after = 5;
  std::int64_t lockout_ms = 300'000;
  std::string site, grid_code;
  std::string db_path;                       // the journal, read with a read-only connection
  std::string evidence_dir;                  // camera evidence (edge/evidence_store.hpp)
  std::int64_t keepalive_ms = 15'000;        // SSE comment this often when nothing happens
  std::size_t client_queue = 1000;           // SSE frames queued per client before it is dropped
  std::int64_t command_timeout_ms = 10'000;  // wait for the pipeline's answer to an action
  std::int64_t stale_after_ms = 5'000;  // /healthz: the pipeline must have committed this recently
  int worker_threads = 32;              // HTTP workers (each open stream holds one)
  // Devices from the config (id or friendly name → location), listed even before they report.
  std::map<std::string, edge::Location> configured_devices;
};

DashboardOptions dashboard_options(const Config& config);

class Dashboard final : public edge::PipelineHook {
 public:
  // `status` renders anjud's status JSON (what `anju status` shows).
  Dashboard(DashboardOptions options, edge::Pipeline& pipeline, const edge::Clock& clock,
            std::function<nlohmann::json()> status);
  ~Dashboard() override;
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // Before the pipeline starts: the open alerts and the devices as the journal has them.
  void seed(std::vector<edge::Alert> open_alerts);
  // Binds and starts serving; false (logged) when the address or the TLS files are unusable.
  bool start();
  void stop();
  int port() const { return bound_port_; }

  void after_commit(const std::vector<edge::Event>& events,
                    const std::vector<edge::AlertChange>& changes) override;

 private:
  struct Device {
    edge::DeviceRef ref;
    edge::Location location;
    std::int64_t last_seen_ms = 0;
    std::string last_kind;
    std::optional<double> battery;
    std::optional<bool> online;
  };
  struct StreamClient {
    std::deque<std::string> frames;
    bool dropped = false;
    std::string user;
  };

  void routes();
  std::optional<Session> session_of(const httplib::Request& req);
  // Session + (for POST) CSRF; answers 401/403 itself and returns nothing when refused.
  std::optional<Session> require(const httplib::Request& req, httplib::Response& res,
                                 bool state_change, Role at_least = Role::viewer);
  void audit(const std::string& action, const std::string& user, const std::string& ip, bool ok,
             const std::string& alert_id = {}, const std::string& reason = {});
  void refresh_users();
  std::optional<User> find_user(const std::string& name);
  void seed_devices();
  void note_device(const edge::Event& e);
  nlohmann::json device_json(const Device& d) const;

  void on_login(const httplib::Request& req, httplib::Response& res);
  void on_logout(const httplib::Request& req, httplib::Response& res);
  void on_session(const httplib::Request& req, httplib::Response& res);
  void on_alerts(const httplib::Request& req, httplib::Response& res);
  void on_alert(const httplib::Request& req, httplib::Response& res);
  void on_evidence(const httplib::Request& req, httplib::Response& res);
  void on_action(const httplib::Request& req, httplib::Response& res);
  void on_events(const httplib::Request& req, httplib::Response& res);
  void on_devices(const httplib::Request& req, httplib::Response& res);
  void on_status(const httplib::Request& req, httplib::Response& res);
  void on_stream(const httplib::Request& req, httplib::Response& res);
  void on_healthz(const httplib::Request& req, httplib::Response& res);
  void on_metrics(const httplib::Request& req, httplib::Response& res);
  void on_asset(const httplib::Request& req, httplib::Response& res);

  DashboardOptions options_;
  edge::Pipeline& pipeline_;
  const edge::Clock& clock_;
  std::function<nlohmann::json()> status_;
  bool tls_ = false;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int bound_port_ = 0;

  // Pipeline-fed state.
  mutable std::mutex mu_;
  std::condition_variable stream_cv_;
  std::map<std::string, edge::Alert> open_;  // by alert id
  // GET /api/alerts rendered once per change of the open alerts (every open screen polls it and
  // the list changes far less often than it is asked for); alerts_gen_ counts the changes.
  std::shared_ptr<const std::string> alerts_body_;
  std::uint64_t alerts_gen_ = 0;
  std::map<std::string, Device> devices_;  // by device id
  std::set<std::shared_ptr<StreamClient>> clients_;
  std::map<std::string, std::int64_t> events_by_kind_;
  std::int64_t sse_dropped_ = 0;
  bool stopping_ = false;
  std::atomic<std::int64_t> last_commit_mono_ms_{0};

  // Authentication.
  std::mutex auth_mu_;
  SessionStore sessions_;
  LoginLimiter limiter_;
  std::vector<User> users_;
  std::string users_stamp_;  // mtime and size of the users file when it was read
  std::int64_t logins_ok_ = 0, logins_failed_ = 0, logins_locked_ = 0;
};

}  // namespace anju::firmware
