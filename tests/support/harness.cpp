#include "harness.hpp"

#include "anju/edge/journal.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace anju::it {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string unique_client_id(const char* what) {
  static std::atomic<int> counter{0};
  return std::string("anju-it-") + what + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++);
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + (errno ? std::string(": ") + std::strerror(errno) : ""));
}

// mosquitto lives in sbin, which is not always on a test runner's PATH.
std::string find_program(const std::string& name, const std::vector<std::string>& extra_dirs) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string d; std::getline(ss, d, ':');)
      if (!d.empty()) dirs.push_back(d);
  }
  dirs.insert(dirs.end(), extra_dirs.begin(), extra_dirs.end());
  for (const auto& d : dirs) {
    const fs::path p = fs::path(d) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  throw std::runtime_error(name + " not found on PATH or in /usr/sbin, /usr/local/sbin");
}

std::string mosquitto_binary() {
  if (const char* p = std::getenv("ANJU_IT_MOSQUITTO")) return p;
  return find_program("mosquitto", {"/usr/sbin", "/usr/local/sbin"});
}

}  // namespace

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (SteadyClock::now() >= deadline) return pred();
    std::this_thread::sleep_for(poll);
  }
}

bool wait_with_progress(const std::function<bool()>& pred,
                        const std::function<std::int64_t()>& progress,
                        std::chrono::milliseconds timeout, std::chrono::milliseconds stall,
                        std::chrono::milliseconds poll) {
  const auto deadline = SteadyClock::now() + timeout;
  std::int64_t last = progress();
  auto last_change = SteadyClock::now();
  for (;;) {
    if (pred()) return true;
    const auto now = SteadyClock::now();
    if (now >= deadline) return pred();
    const std::int64_t p = progress();
    if (p != last) {
      last = p;
      last_change = now;
    } else if (now - last_change >= stall) {
      return pred();
    }
    std::this_thread::sleep_for(poll);
  }
}

// ---------------------------------------------------------------------------------------------

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) fail("mkdtemp " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("ANJU_IT_KEEP") != nullptr) {
    std::fprintf(stderr, "ANJU_IT_KEEP: keeping %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::string tail(const std::string& text, std::size_t max_bytes) {
  return text.size() <= max_bytes ? text : "..." + text.substr(text.size() - max_bytes);
}

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    ::close(fd);
    fail("bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int tcp_connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool tcp_port_open(int port) {
  const int fd = tcp_connect_loopback(port);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// ---------------------------------------------------------------------------------------------

Child::~Child() {
  if (pid_ > 0 && !status_) kill9();
}

void Child::spawn(const std::vector<std::string>& argv, const fs::path& log) {
  if (pid_ > 0 && !status_) throw std::logic_error("Child::spawn: still running");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  // The test's own sockets (Paho clients) must not live on in the child.
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  pid_ = pid;
  status_.reset();
}

bool Child::reap(bool block) {
  if (pid_ <= 0 || status_) return true;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r < 0) {
    status_ = -1;  // not our child any more (cannot happen unless someone else reaped it)
    return true;
  }
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return true;
}

bool Child::running() {
  return pid_ > 0 && !reap(false);
}

bool Child::wait_exit(std::chrono::milliseconds timeout) {
  return wait_until([&] { return reap(false); }, timeout, 5ms);
}

void Child::kill9() {
  if (pid_ <= 0 || reap(false)) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

int Child::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (!reap(false)) {
    ::kill(pid_, SIGTERM);
    if (!wait_exit(grace)) kill9();
  }
  return *status_;
}

int run_shell(const std::string& command, std::string* output) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) fail("popen " + command);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  if (output) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// ---------------------------------------------------------------------------------------------

Mosquitto::Mosquitto(MosquittoOptions options) : options_(std::move(options)) {
  // mosquitto started as root drops to the "mosquitto" user, which must read its config.
  fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::group_exec | fs::perms::others_read |
                                   fs::perms::others_exec);
  if (!options_.user.empty()) {
    std::string out;
    const std::string cmd =
        "'" + find_program("mosquitto_passwd", {"/usr/sbin", "/usr/local/sbin"}) + "' -c -b '" +
        (dir_ / "passwd").string() + "' '" + options_.user + "' '" + options_.password + "'";
    if (run_shell(cmd, &out) != 0) throw std::runtime_error("mosquitto_passwd failed: " + out);
    fs::permissions(dir_ / "passwd", fs::perms::owner_read | fs::perms::owner_write |
                                         fs::perms::group_read | fs::perms::others_read);
  }
}

Mosquitto::~Mosquitto() {
  stop();
}

int Mosquitto::reserve_port() {
  if (!port_chosen_) {
    port_ = pick_free_port();
    port_chosen_ = true;
  }
  return port_;
}

void Mosquitto::set_config(std::string text) {
  config_ = std::move(text);
}

void Mosquitto::write_config() {
  if (!config_.empty()) {
    write_file(dir_ / "mosquitto.conf",
               config_ + "\npersistence false\nlog_dest stderr\nlog_type all\n");
    fs::permissions(dir_ / "mosquitto.conf", fs::perms::owner_read | fs::perms::owner_write |
                                                 fs::perms::group_read | fs::perms::others_read);
    return;
  }
  std::string conf = "listener " + std::to_string(port_) + " 127.0.0.1\n";
  conf += std::string("allow_anonymous ") + (options_.allow_anonymous ? "true" : "false") + "\n";
  if (!options_.user.empty()) conf += "password_file " + (dir_ / "passwd").string() + "\n";
  conf += "persistence false\n";
  conf += "log_dest stderr\n";
  conf += "log_type all\n";
  conf += "max_queued_messages 0\n";
  write_file(dir_ / "mosquitto.conf", conf);
  fs::permissions(dir_ / "mosquitto.conf", fs::perms::owner_read | fs::perms::owner_write |
                                               fs::perms::group_read | fs::perms::others_read);
}

void Mosquitto::start() {
  if (proc_.running()) return;
  const bool fixed = port_chosen_;
  std::string why;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (!fixed) port_ = pick_free_port();
    port_chosen_ = true;
    write_config();
    proc_.spawn({mosquitto_binary(), "-c", (dir_ / "mosquitto.conf").string()},
                dir_ / "mosquitto.log");
    const bool up = wait_until([&] { return !proc_.running() || tcp_port_open(port_); }, 5s, 5ms) &&
                    proc_.running();
    if (up) return;
    proc_.kill9();
    why = "mosquitto did not start on port " + std::to_string(port_) + "; log:\n" + tail(log());
  }
  throw std::runtime_error(why);
}

void Mosquitto::stop() {
  if (proc_.pid() > 0) proc_.terminate(3s);
}

void Mosquitto::set_allow_anonymous(bool allow) {
  options_.allow_anonymous = allow;
  write_config();
  if (proc_.running()) ::kill(proc_.pid(), SIGHUP);
}

std::string Mosquitto::log() const {
  return read_file(dir_ / "mosquitto.log");
}

// ---------------------------------------------------------------------------------------------

std::string gateway_yaml(const GatewayConfig& c) {
  std::ostringstream y;
  y << "site:\n"
    << "  id: " << c.site << "\n"
    << "  name: Anju integration test\n"
    << "  grid_code: \"11010500100200300401\"\n"
    << "  division_code: \"110105001002\"\n"
    << "data_dir: /nonexistent/overridden-by-the-command-line\n"
    << "log_level: " << c.log_level << "\n"
    << "local_broker:\n"
    << "  uri: " << c.local_uri << "\n";
  if (!c.local_username_file.empty())
    y << "  username_file: " << c.local_username_file << "\n"
      << "  password_file: " << c.local_password_file << "\n";
  y << "uplink:\n";
  if (c.uplink_uri.empty()) {
    y << "  enabled: false\n";
  } else {
    y << "  enabled: true\n"
      << "  uri: " << c.uplink_uri << "\n"
      << "  backoff_min_ms: " << c.backoff_min_ms << "\n"
      << "  backoff_max_ms: " << c.backoff_max_ms << "\n";
    if (!c.command_key_file.empty()) y << "  command_key_file: " << c.command_key_file << "\n";
    if (c.evidence_per_hour >= 0) y << "  evidence_per_hour: " << c.evidence_per_hour << "\n";
  }
  y << "  event_kinds: [";
  for (std::size_t i = 0; i < c.event_kinds.size(); ++i) y << (i ? ", " : "") << c.event_kinds[i];
  y << "]\n"
    << "journal:\n"
    << "  synchronous: " << c.synchronous << "\n"
    << "summary:\n"
    << "  interval_s: " << c.summary_interval_s << "\n"
    << "rules:\n"
    << "  heartbeat_timeout_s: " << c.heartbeat_timeout_s << "\n"
    << "  weak_linkquality: " << c.weak_linkquality << "\n"
    << "  thresholds:\n"
    << "    - name: temperature_high\n"
    << "      kind: temperature\n"
    << "      above: 45\n"
    << "      hysteresis: 2\n"
    << "      hold_s: 10\n"
    << "      severity: 2\n"
    << "zigbee2mqtt:\n"
    << "  base_topic: zigbee2mqtt\n"
    << "  devices:\n"
    << "    smoke_3_2_hall:\n"
    << "      building: \"3\"\n"
    << "      unit: \"2\"\n"
    << "      room: hall\n"
    << "      gb28181: \"11010500001340000001\"\n"
    << "    gas_3_2_1201_kitchen:\n"
    << "      building: \"3\"\n"
    << "      unit: \"2\"\n"
    << "      room: 1201 kitchen\n"
    << "      gb28181: \"11010500001340000002\"\n"
    << "    leak_pump_room:\n"
    << "      building: B1\n"
    << "      room: pump room\n"
    << "    door_3_2_entrance:\n"
    << "      building: \"3\"\n"
    << "      unit: \"2\"\n"
    << "      room: entrance\n"
    << "    climate_3_2_1201:\n"
    << "      building: \"3\"\n"
    << "      unit: \"2\"\n"
    << "      room: \"1201\"\n";
  if (c.dashboard_port > 0)
    y << "dashboard:\n"
      << "  enabled: true\n"
      << "  listen: 127.0.0.1:" << c.dashboard_port << "\n"
      << "  lockout_after: " << c.dashboard_lockout_after << "\n"
      << "  lockout_s: " << c.dashboard_lockout_s << "\n";
  if (c.dashboard_port > 0 && !c.dashboard_tls_cert.empty())
    y << "  tls_cert: " << c.dashboard_tls_cert << "\n"
      << "  tls_key: " << c.dashboard_tls_key << "\n";
  return y.str();
}

Anjud::Anjud(GatewayConfig config) : config_(std::move(config)) {
  data_dir_ = dir_ / "data";
  config_path_ = dir_ / "anju.yaml";
  log_path_ = dir_ / "anjud.log";
  fs::create_directories(data_dir_);
  write_file(config_path_, gateway_yaml(config_));
}

Anjud::~Anjud() {
  proc_.kill9();
}

void Anjud::start() {
  if (proc_.running()) throw std::logic_error("anjud already running");
  std::vector<std::string> argv;
  if (!config_.environment.empty()) {
    argv.push_back("/usr/bin/env");
    argv.insert(argv.end(), config_.environment.begin(), config_.environment.end());
  }
  argv.push_back(config_.binary.empty() ? std::string(ANJUD_PATH) : config_.binary);
  argv.insert(argv.end(), {"--config", config_path_.string(), "--data-dir", data_dir_.string()});
  proc_.spawn(argv, log_path_);
}

void Anjud::kill9() {
  proc_.kill9();
}

void Anjud::signal(int sig) {
  if (proc_.running()) ::kill(proc_.pid(), sig);
}

int Anjud::term(std::chrono::milliseconds grace) {
  return proc_.terminate(grace);
}

std::optional<json> Anjud::status() const {
  const std::string path = (data_dir_ / "anjud.sock").string();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string request = R"({"cmd":"status"})";
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto j = json::parse(out, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

bool Anjud::wait_devices(std::int64_t devices, std::chrono::milliseconds timeout) const {
  return wait_until(
      [&] {
        auto s = status();
        return s && s->contains("zigbee2mqtt") &&
               (*s)["zigbee2mqtt"].value("devices", std::int64_t{-1}) == devices;
      },
      timeout, 20ms);
}

// ---------------------------------------------------------------------------------------------

namespace {
struct ReadOnlyDb {
  sqlite3* db = nullptr;
  explicit ReadOnlyDb(const fs::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      const std::string err = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw std::runtime_error("open " + path.string() + ": " + err);
    }
    sqlite3_busy_timeout(db, 5000);
    anju::edge::register_functions(db);  // anju_event_json(body)
  }
  ~ReadOnlyDb() { sqlite3_close(db); }
  sqlite3_stmt* prepare(const std::string& sql) const {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error("prepare " + sql + ": " + sqlite3_errmsg(db));
    return st;
  }
};
}  // namespace

std::int64_t sql_i64(const fs::path& db_path, const std::string& sql) {
  ReadOnlyDb db(db_path);
  sqlite3_stmt* st = db.prepare(sql);
  std::int64_t v = 0;
  const int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    throw std::runtime_error("step " + sql + ": " + sqlite3_errmsg(db.db));
  return v;
}

std::vector<std::string> sql_strings(const fs::path& db_path, const std::string& sql) {
  ReadOnlyDb db(db_path);
  sqlite3_stmt* st = db.prepare(sql);
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st, 0));
    out.emplace_back(p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st, 0)))
                       : std::string());
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) throw std::runtime_error("step " + sql + ": " + sqlite3_errmsg(db.db));
  return out;
}

// ---------------------------------------------------------------------------------------------

Collector::Collector(const std::string& uri, const std::string& filter, const std::string& user,
                     const std::string& password) {
  client_ = std::make_unique<mqtt::async_client>(uri, unique_client_id("collector"));
  client_->set_message_callback([this](mqtt::const_message_ptr m) {
    {
      std::lock_guard lock(mu_);
      messages_.push_back({m->get_topic(), m->get_payload_str(), m->is_retained()});
    }
    cv_.notify_all();
  });
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  opts.set_keep_alive_interval(30);
  opts.set_connect_timeout(5);
  if (!user.empty()) {
    opts.set_user_name(user);
    opts.set_password(password);
  }
  if (!client_->connect(opts)->wait_for(10s) || !client_->is_connected())
    throw std::runtime_error("collector: cannot connect to " + uri);
  auto tok = client_->subscribe(filter, 1);
  if (!tok->wait_for(10s)) throw std::runtime_error("collector: no SUBACK for " + filter);
  const auto response = tok->get_subscribe_response();
  for (auto rc : response.get_reason_codes())
    if (rc >= 0x80) throw std::runtime_error("collector: subscription to " + filter + " refused");
}

Collector::~Collector() {
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(5s);
  } catch (const std::exception&) {
  }
}

std::vector<Message> Collector::messages() const {
  std::lock_guard lock(mu_);
  return messages_;
}

void Collector::publish(const std::string& topic, const std::string& payload, int qos,
                        bool retain) {
  auto tok = client_->publish(topic, payload.data(), payload.size(), qos, retain);
  if (!tok->wait_for(10s)) throw std::runtime_error("publish to " + topic + " timed out");
}

std::size_t Collector::size() const {
  std::lock_guard lock(mu_);
  return messages_.size();
}

bool Collector::wait_for(const std::function<bool(const std::vector<Message>&)>& pred,
                         std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(messages_); });
}

bool Collector::wait_for_progress(const std::function<bool(const std::vector<Message>&)>& pred,
                                  std::chrono::milliseconds timeout,
                                  std::chrono::milliseconds stall) const {
  const auto deadline = SteadyClock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    if (pred(messages_)) return true;
    const std::size_t before = messages_.size();
    const auto until = std::min(deadline, SteadyClock::now() + stall);
    cv_.wait_until(lock, until, [&] { return messages_.size() != before; });
    if (messages_.size() == before) return pred(messages_);  // stalled or out of time
  }
}

// ---------------------------------------------------------------------------------------------

Publisher::Publisher(const std::string& uri) {
  client_ = std::make_unique<mqtt::async_client>(uri, unique_client_id("publisher"));
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  opts.set_keep_alive_interval(30);
  opts.set_connect_timeout(5);
  if (!client_->connect(opts)->wait_for(10s) || !client_->is_connected())
    throw std::runtime_error("publisher: cannot connect to " + uri);
}

Publisher::~Publisher() {
  try {
    flush();
    if (client_->is_connected()) client_->disconnect()->wait_for(5s);
  } catch (const std::exception&) {
  }
}

void Publisher::publish(const std::string& topic, const std::string& payload, int qos,
                        bool retain) {
  flush();
  auto tok = client_->publish(topic, payload.data(), payload.size(), qos, retain);
  if (!tok->wait_for(10s)) throw std::runtime_error("publish to " + topic + " timed out");
}

void Publisher::publish_windowed(const std::string& topic, const std::string& payload, int qos,
                                 std::size_t window) {
  while (pending_.size() >= window) {
    if (!pending_.front()->wait_for(10s)) throw std::runtime_error("publish timed out");
    pending_.pop_front();
  }
  pending_.push_back(client_->publish(topic, payload.data(), payload.size(), qos, false));
}

void Publisher::flush() {
  while (!pending_.empty()) {
    if (!pending_.front()->wait_for(10s)) throw std::runtime_error("publish timed out");
    pending_.pop_front();
  }
}

void publish(const std::string& uri, const std::string& topic, const std::string& payload, int qos,
             bool retain) {
  Publisher p(uri);
  p.publish(topic, payload, qos, retain);
}

// ---------------------------------------------------------------------------------------------

std::string demo_devices_json() {
  // Verbatim from scripts/z2m-sim.
  return R"([
 {"ieee_address":"0x00124b0000000000","type":"Coordinator","friendly_name":"Coordinator","definition":null},
 {"ieee_address":"0x00158d0000000001","type":"EndDevice","friendly_name":"smoke_3_2_hall","definition":{"model":"JTYJ-GD-01LM/BW","vendor":"Aqara","exposes":[{"type":"binary","property":"smoke"},{"type":"numeric","property":"battery"},{"type":"binary","property":"tamper"},{"type":"binary","property":"battery_low"}]}},
 {"ieee_address":"0x00158d0000000002","type":"EndDevice","friendly_name":"gas_3_2_1201_kitchen","definition":{"model":"JTQJ-BF-01LM/BW","vendor":"Aqara","exposes":[{"type":"binary","property":"gas"}]}},
 {"ieee_address":"0x00158d0000000003","type":"EndDevice","friendly_name":"leak_pump_room","definition":{"model":"SJCGQ11LM","vendor":"Aqara","exposes":[{"type":"binary","property":"water_leak"},{"type":"numeric","property":"battery"}]}},
 {"ieee_address":"0x00158d0000000004","type":"EndDevice","friendly_name":"door_3_2_entrance","definition":{"model":"MCCGQ11LM","vendor":"Aqara","exposes":[{"type":"binary","property":"contact"},{"type":"numeric","property":"battery"}]}},
 {"ieee_address":"0x00158d0000000005","type":"EndDevice","friendly_name":"climate_3_2_1201","definition":{"model":"WSDCGQ11LM","vendor":"Aqara","exposes":[{"type":"numeric","property":"temperature"},{"type":"numeric","property":"humidity"},{"type":"numeric","property":"battery"}]}}
])";
}

json z2m_device(const std::string& ieee, const std::string& name, const std::string& model,
                const std::vector<std::pair<std::string, std::string>>& properties) {
  json exposes = json::array();
  for (const auto& [type, prop] : properties)
    exposes.push_back({{"type", type}, {"property", prop}});
  return {{"ieee_address", ieee},
          {"type", "EndDevice"},
          {"friendly_name", name},
          {"definition", {{"model", model}, {"vendor", "Aqara"}, {"exposes", exposes}}}};
}

int add_dashboard_user(const Anjud& gw, const std::string& name, const std::string& role,
                       const std::string& password, std::string* output) {
  // Single quotes around every argument; the test's names and passwords hold none.
  const std::string cmd = "printf '%s\\n' '" + password + "' | '" + std::string(ANJU_PATH) +
                          "' --data-dir '" + gw.data_dir().string() + "' user add '" + name +
                          "' --role '" + role + "'";
  std::string out;
  const int rc = run_shell(cmd, &out);
  if (output) *output = out;
  return rc;
}

void gpio_input(const Anjud& gw, const std::string& chip, const std::string& line) {
  const auto path = gw.data_dir() / ("gpio-" + chip + ".in");
  const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // ENXIO: no reader
  if (fd < 0) throw std::runtime_error(path.string() + ": " + std::strerror(errno));
  const std::string text = line + "\n";
  const auto n = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    throw std::runtime_error(path.string() + ": short write");
}

}  // namespace anju::it
