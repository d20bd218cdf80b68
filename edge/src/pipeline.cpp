#include "anju/edge/pipeline.hpp"
#include "anju/edge/thread_name.hpp"

#include "anju/edge/checksum.hpp"
#include "anju/edge/uuid.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace anju::edge {
namespace fs = std::filesystem;
namespace {

void put_u32_at(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

constexpr std::uint32_t kMaxRecord = 1u << 20;

}  // namespace

Pipeline::Pipeline(Journal& journal, RuleEngine& rules, const Clock& clock, PipelineOptions options)
    : journal_(journal), rules_(rules), clock_(clock), options_(std::move(options)) {
  stats_.queue_capacity = options_.queue_capacity;
}

Pipeline::~Pipeline() {
  stop();
  close_segment();
}

std::string Pipeline::segment_path(std::int64_t gen) const {
  return options_.inbox_dir + "/inbox-" + std::to_string(gen) + ".log";
}

void Pipeline::close_segment() {
  if (inbox_map_) ::munmap(inbox_map_, static_cast<std::size_t>(inbox_map_size_));
  inbox_map_ = nullptr;
  inbox_map_size_ = 0;
  if (inbox_fd_ >= 0) ::close(inbox_fd_);
  inbox_fd_ = -1;
}

// A segment is preallocated and mapped shared: a record copied into the mapping is in the
// kernel's page cache at once, so it survives a crash of this process exactly like a write(),
// without a system call per message. Preallocation (not a sparse file) means a full disk shows
// up here, as an error, and never as SIGBUS on a store into the mapping. When it cannot be
// mapped, records go through write() instead.
void Pipeline::open_segment(std::int64_t gen) {
  close_segment();
  const std::string path = segment_path(gen);
  inbox_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (inbox_fd_ < 0)
    throw std::runtime_error("cannot open inbox segment " + path + ": " + std::strerror(errno));
  inbox_gen_ = gen;
  inbox_off_ = 0;
  const auto size = options_.inbox_segment_bytes;
  const int rc = ::posix_fallocate(inbox_fd_, 0, size);
  if (rc != 0) {
    spdlog::warn("inbox segment {}: cannot preallocate {} bytes ({}); using write()", path, size,
                 std::strerror(rc));
    return;
  }
  void* p = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED,
                   inbox_fd_, 0);
  if (p == MAP_FAILED) {
    spdlog::warn("inbox segment {}: cannot map it ({}); using write()", path, std::strerror(errno));
    return;
  }
  inbox_map_ = static_cast<char*>(p);
  inbox_map_size_ = size;
}

bool Pipeline::append_inbox(const std::string& record) {
  const auto n = static_cast<std::int64_t>(record.size());
  if (inbox_off_ + n > options_.inbox_segment_bytes && inbox_off_ > 0) open_segment(inbox_gen_ + 1);
  if (inbox_map_ && inbox_off_ + n <= inbox_map_size_) {
    std::memcpy(inbox_map_ + inbox_off_, record.data(), record.size());
    inbox_off_ += n;
    return true;
  }
  // Not mapped, or a record larger than a segment: append with write() at the offset.
  std::size_t done = 0;
  while (done < record.size()) {
    const ssize_t w = ::pwrite(inbox_fd_, record.data() + done, record.size() - done,
                               inbox_off_ + static_cast<std::int64_t>(done));
    if (w < 0) {
      if (errno == EINTR) continue;
      spdlog::error("inbox write failed: {}; events are queued in memory only",
                    std::strerror(errno));
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  inbox_off_ += n;
  return true;
}

void Pipeline::replay() {
  fs::create_directories(options_.inbox_dir);
  std::int64_t gen = 0, off = 0;
  if (auto v = meta_get(journal_.db(), "inbox_gen")) gen = std::stoll(*v);
  if (auto v = meta_get(journal_.db(), "inbox_off")) off = std::stoll(*v);
  committed_gen_ = gen;
  std::vector<std::int64_t> gens;
  for (const auto& entry : fs::directory_iterator(options_.inbox_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("inbox-", 0) != 0 || name.size() < 11) continue;
    try {
      gens.push_back(std::stoll(name.substr(6)));
    } catch (...) {
    }
  }
  std::sort(gens.begin(), gens.end());
  std::int64_t max_gen = gen;
  for (std::int64_t g : gens) {
    max_gen = std::max(max_gen, g);
    if (g < gen) {
      fs::remove(segment_path(g));
      continue;
    }
    std::ifstream in(segment_path(g), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t pos = (g == gen) ? static_cast<std::size_t>(std::min<std::int64_t>(
                                       off, static_cast<std::int64_t>(data.size())))
                                 : 0;
    std::int64_t count = 0;
    while (pos + 8 <= data.size()) {
      const std::uint32_t len = get_u32(data.data() + pos);
      const std::uint32_t crc = get_u32(data.data() + pos + 4);
      if (len == 0) {  // the preallocated, never written rest of the segment
        data.resize(pos);
        break;
      }
      if (len > kMaxRecord || pos + 8 + len > data.size()) break;  // torn tail
      if (crc32(std::string_view(data.data() + pos + 8, len)) != crc) break;
      auto r = decode_stored(std::string_view(data.data() + pos + 8, len));
      pos += 8 + len;
      if (!r.event) {
        spdlog::error("inbox {}: undecodable record skipped: {}", segment_path(g), r.error);
        continue;
      }
      r.event->seq = 0;
      queue_.push_back({std::move(*r.event), std::string(data.data() + pos - len, len), g,
                        static_cast<std::int64_t>(pos)});
      ++count;
    }
    if (pos < data.size())
      spdlog::warn("inbox {}: a torn record at offset {} ignored (the rest is not read)",
                   segment_path(g), pos);
    if (count > 0)
      spdlog::warn("inbox {}: replaying {} events handed over before the last stop",
                   segment_path(g), count);
    stats_.replayed += count;
  }
  submitted_ += stats_.replayed;
  stats_.submitted += stats_.replayed;
  open_segment(max_gen + 1);  // never append behind a torn record
}

void Pipeline::start(bool with_thread) {
  std::lock_guard lock(mu_);
  if (started_) return;
  replay();
  started_ = true;
  stats_.last_seq = journal_.last_seq();
  last_tick_ms_ = clock_.wall_ms();
  last_retention_ms_ = last_tick_ms_;
  if (with_thread)
    thread_ = std::thread([this] {
      name_this_thread("anju-pipeline");
      loop();
    });
}

void Pipeline::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Pipeline::submit(Event e) {
  std::vector<Event> v;
  v.push_back(std::move(e));
  return submit(std::move(v));
}

bool Pipeline::submit(std::vector<Event> events) {
  if (events.empty()) return true;
  std::vector<std::string> records;
  records.reserve(events.size());
  for (const auto& e : events) {
    std::string rec(8, '\0');
    rec += encode_binary(e);
    const auto body = std::string_view(rec).substr(8);
    put_u32_at(rec.data(), static_cast<std::uint32_t>(body.size()));
    put_u32_at(rec.data() + 4, crc32(body));
    records.push_back(std::move(rec));
  }
  std::unique_lock lock(mu_);
  not_full_.wait(lock, [&] { return stopping_ || queue_.size() < options_.queue_capacity; });
  if (stopping_ || !started_) return false;
  // In the kernel (page cache) before we return, so a crash of this process cannot lose it.
  // (A power cut can lose the page cache; so can the broker that delivered it.)
  const std::size_t before = queue_.size();
  for (std::size_t i = 0; i < events.size(); ++i) {
    append_inbox(records[i]);
    queue_.push_back({std::move(events[i]), records[i].substr(8), inbox_gen_, inbox_off_});
  }
  submitted_ += static_cast<std::int64_t>(events.size());
  stats_.submitted = submitted_;
  const auto max_batch = static_cast<std::size_t>(options_.max_batch);
  const bool wake = before == 0 || (before < max_batch && queue_.size() >= max_batch);
  lock.unlock();
  // The pipeline thread waits for the first event of a batch, then for a full batch or the end
  // of its commit window: wake it only for those, not for every message.
  if (wake) not_empty_.notify_one();
  return true;
}

bool Pipeline::wait_committed(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const std::int64_t target = submitted_;
  return committed_cv_.wait_for(lock, timeout, [&] { return committed_submitted_ >= target; });
}

PipelineStats Pipeline::stats() const {
  std::lock_guard lock(mu_);
  PipelineStats s = stats_;
  s.queue_depth = queue_.size();
  return s;
}

bool Pipeline::enqueue_command(AnyCommand cmd, CommandDone done) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !started_) return false;
    commands_.emplace_back(std::move(cmd), std::move(done));
  }
  not_empty_.notify_one();
  return true;
}

bool Pipeline::submit_command(AlertCommand cmd, CommandDone done) {
  return enqueue_command(std::move(cmd), std::move(done));
}

bool Pipeline::submit_maintenance(MaintenanceCommand cmd, CommandDone done) {
  return enqueue_command(std::move(cmd), std::move(done));
}

Event Pipeline::gateway_event(EventKind kind, std::int64_t now) const {
  Event e;
  e.id = uuid_v7(now);
  e.ts_ms = now;
  e.mono_ns = clock_.mono_ns();
  e.boot_id = boot_id();
  e.clock_synced = clock_.synced();
  e.kind = kind;
  return e;
}

Event Pipeline::transition_event(const Alert& a, const std::string& request_id,
                                 const std::string& source, std::int64_t now) const {
  const auto& step = a.history.back();
  Event e = gateway_event(EventKind::alert_transition, now);
  e.site = a.site;
  e.grid_code = a.grid_code;
  e.location = a.location;
  e.device = a.device;
  e.severity = a.severity;
  e.source = source;
  e.attrs = {{"alert_id", a.alert_id}, {"action", step.action}, {"from", step.from},
             {"to", step.to},          {"by", step.by},         {"via", step.via},
             {"note", step.note}};
  if (!request_id.empty()) e.attrs["request_id"] = request_id;
  return e;
}

void Pipeline::run_command(const AnyCommand& any, std::int64_t now, std::vector<Event>& events,
                           std::vector<AlertChange>& changes, CommandResult& result,
                           bool& duplicate) {
  const std::string& request_id =
      std::visit([](const auto& c) -> const std::string& { return c.request_id; }, any);
  Stmt seen = journal_.db().prepare("SELECT result FROM alert_requests WHERE request_id=?");
  seen.bind(1, request_id);
  if (seen.step()) {
    // Applied before: answer as then, change nothing.
    duplicate = true;
    const auto j = nlohmann::json::parse(seen.str(0), nullptr, false);
    result.ok = j.is_object() && j.value("ok", false);
    result.error = j.is_object() ? j.value("error", "") : "";
    if (const auto* ac = std::get_if<AlertCommand>(&any))
      for (const auto& a : rules_.open_alerts())
        if (a.alert_id == ac->alert_id) result.alert = a;
    return;
  }
  std::string alert_id;
  if (const auto* mc = std::get_if<MaintenanceCommand>(&any)) {
    result = rules_.apply(*mc, now);
    if (result.ok) {
      Event e = gateway_event(EventKind::maintenance, now);
      e.location = {mc->building, mc->unit, ""};
      e.device.id = mc->device;
      e.source = mc->via;
      e.attrs = {{"action", mc->start ? "start" : "end"},
                 {"by", mc->user},
                 {"note", mc->note},
                 {"duration_s", mc->duration_s},
                 {"request_id", mc->request_id}};
      journal_.append(e);
      events.push_back(std::move(e));
      nlohmann::json windows = nlohmann::json::array();
      for (const auto& w : rules_.maintenance()) windows.push_back(to_json(w));
      meta_set(journal_.db(), "maintenance_windows", windows.dump());
    }
  } else {
    const auto& cmd = std::get<AlertCommand>(any);
    alert_id = cmd.alert_id;
    if (cmd.expires_ms > 0 && now > cmd.expires_ms) {
      result.error = "command expired " + std::to_string((now - cmd.expires_ms) / 1000) + " s ago";
    } else {
      const std::size_t before = changes.size();
      result = rules_.apply(cmd, now, changes);
      if (result.ok && changes.size() > before) {
        Event e = transition_event(changes.back().alert, cmd.request_id, cmd.via, now);
        journal_.append(e);
        changes.back().alert.last_seq = e.seq;
        events.push_back(std::move(e));
      }
    }
  }
  Stmt put =
      journal_.db().prepare("INSERT INTO alert_requests(request_id, at_ms, result) VALUES(?,?,?)");
  put.bind(1, request_id)
      .bind(2, now)
      .bind(
          3,
          nlohmann::json{{"ok", result.ok}, {"error", result.error}, {"alert_id", alert_id}}.dump())
      .exec();
}

void Pipeline::ensure_txn() {
  if (open_.active) return;
  journal_.begin();
  open_.active = true;
  open_.opened_mono_ns = clock_.mono_ns();
}

void Pipeline::apply(std::vector<Item>& batch, std::vector<Command>& commands, bool tick) {
  const std::int64_t now = clock_.wall_ms();
  // Events and commands join the open transaction first, so that whatever fails below (even
  // BEGIN) leaves every event in open_.items for fail_open to retry and every command answered.
  const std::size_t first_item = open_.items.size();
  for (auto& item : batch) open_.items.push_back(std::move(item));
  batch.clear();
  const std::size_t first_command = open_.commands.size();
  for (auto& c : commands) open_.commands.push_back(std::move(c));
  commands.clear();
  open_.results.resize(open_.commands.size());
  if (open_.items.size() > first_item || open_.commands.size() > first_command) ensure_txn();
  auto& events = open_.events;
  auto& changes = open_.changes;
  // Maintenance windows first (they decide how the batch's alerts are raised), alert commands
  // after the events (they may refer to an alert the batch raises).
  auto run_commands = [&](bool maintenance) {
    for (std::size_t i = first_command; i < open_.commands.size(); ++i)
      if (std::holds_alternative<MaintenanceCommand>(open_.commands[i].first) == maintenance)
        run_command(open_.commands[i].first, now, events, changes, open_.results[i].first,
                    open_.results[i].second);
  };
  run_commands(true);
  for (std::size_t i = first_item; i < open_.items.size(); ++i) {
    Item& item = open_.items[i];
    // Moved, not copied: a failed commit moves them back (fail_open) and retries them.
    journal_.append(item.event, item.body);
    rules_.on_event(item.event, changes);
    std::vector<Event> derived;
    for (auto* d : derivers_)
      for (auto& x : d->on_event(item.event)) derived.push_back(std::move(x));
    open_.from_items.emplace_back(events.size(), i);
    events.push_back(std::move(item.event));
    for (auto& x : derived) append_derived(std::move(x), now);
  }
  run_commands(false);
  if (tick) {
    std::vector<Event> synth;
    std::vector<AlertChange> tick_changes;
    rules_.on_tick(now, synth, tick_changes);
    for (auto* d : derivers_)
      for (auto& x : d->on_tick(now)) synth.push_back(std::move(x));
    if (!synth.empty() || !tick_changes.empty()) ensure_txn();
    // Escalations are transitions too: each one is an event in the journal.
    for (auto& c : tick_changes) {
      if (c.type == AlertChangeType::escalated) {
        Event t = transition_event(c.alert, "", "rules", now);
        journal_.append(t);
        c.alert.last_seq = t.seq;
        events.push_back(std::move(t));
      }
      changes.push_back(std::move(c));
    }
    for (auto& e : synth) {
      e.mono_ns = clock_.mono_ns();
      e.boot_id = boot_id();
      e.clock_synced = clock_.synced();
      journal_.append(e);
      rules_.on_event(e, changes);
      events.push_back(std::move(e));
    }
  }
}

void Pipeline::append_derived(Event e, std::int64_t now) {
  ensure_txn();
  if (e.id.empty()) e.id = uuid_v7(now);
  if (e.ts_ms == 0) e.ts_ms = now;
  e.mono_ns = clock_.mono_ns();
  e.boot_id = boot_id();
  e.clock_synced = clock_.synced();
  journal_.append(e);
  rules_.on_event(e, open_.changes);
  open_.events.push_back(std::move(e));
}

std::int64_t Pipeline::next_deadline_ms() const {
  std::int64_t t = rules_.next_deadline_ms();
  for (const auto* d : derivers_) t = std::min(t, d->next_deadline_ms());
  return t;
}

bool Pipeline::must_commit(bool force) const {
  if (!open_.active) return false;
  if (force || !open_.changes.empty() || !open_.commands.empty()) return true;
  if (open_.items.size() >= static_cast<std::size_t>(options_.max_batch)) return true;
  // Only events that changed no alert: they may wait for more (fewer, larger commits write far
  // less to flash). They are already in the inbox, so waiting loses nothing on a crash.
  return open_.events.size() > open_.items.size() ||
         clock_.mono_ns() - open_.opened_mono_ns >= options_.quiet_commit_ms * 1'000'000;
}

std::size_t Pipeline::commit_open() {
  auto& events = open_.events;
  auto& changes = open_.changes;
  for (auto& c : changes) {
    c.json = to_json(c.alert).dump();
    journal_.put_alert(c.alert, c.json);
    if (c.alert.last_seq > 0) journal_.keep(c.alert.last_seq);
  }
  for (auto* h : hooks_) h->in_transaction(journal_, events, changes);
  if (!open_.items.empty()) {
    meta_set(journal_.db(), "inbox_gen", std::to_string(open_.items.back().inbox_gen));
    meta_set(journal_.db(), "inbox_off", std::to_string(open_.items.back().inbox_end));
  }
  journal_.commit();
  OpenTxn done = std::move(open_);
  open_ = std::move(spare_);
  if (!done.items.empty() && done.items.back().inbox_gen > committed_gen_) {
    for (std::int64_t g = committed_gen_; g < done.items.back().inbox_gen; ++g) {
      std::error_code ec;
      fs::remove(segment_path(g), ec);
    }
    committed_gen_ = done.items.back().inbox_gen;
  }
  for (auto* h : hooks_) h->after_commit(done.events, done.changes);
  for (std::size_t i = 0; i < done.commands.size(); ++i)
    if (done.commands[i].second)
      done.commands[i].second(done.results[i].first, done.results[i].second);
  {
    std::lock_guard lock(mu_);
    committed_submitted_ += static_cast<std::int64_t>(done.items.size());
    stats_.committed += static_cast<std::int64_t>(done.events.size());
    ++stats_.batches;
    stats_.last_seq = journal_.last_seq();
    stats_.alerts_open = static_cast<std::int64_t>(rules_.open_alert_count());
  }
  committed_cv_.notify_all();
  const std::size_t n = done.events.size();
  done.clear();
  spare_ = std::move(done);
  return n;
}

void Pipeline::OpenTxn::clear() {
  active = false;
  opened_mono_ns = 0;
  items.clear();
  events.clear();
  from_items.clear();
  changes.clear();
  commands.clear();
  results.clear();
}

void Pipeline::fail_open(const std::exception& ex) {
  journal_.rollback();
  for (const auto& [at, index] : open_.from_items) {
    open_.items[index].event = std::move(open_.events[at]);
    open_.items[index].event.seq = 0;
  }
  spdlog::error("commit of {} events failed: {}; will retry", open_.items.size(), ex.what());
  {
    std::lock_guard lock(mu_);
    ++stats_.commit_failures;
  }
  // The rules saw events that did not commit: rebuild their state from what did.
  rules_.restore(load_alerts(journal_.db(), true), {}, clock_.wall_ms());
  for (auto* h : hooks_) h->on_rollback(journal_);
  // Commands are not retried: their senders hear of it and may send them again (same id).
  for (auto& [cmd, done] : open_.commands) {
    CommandResult r;
    r.error = "not stored (database error); try again with the same request_id";
    if (done) done(r, false);
  }
  // The events go again, first, in their order.
  std::vector<Item> again = std::move(open_.items);
  for (auto& item : retry_) again.push_back(std::move(item));
  retry_ = std::move(again);
  open_.clear();
}

std::size_t Pipeline::process(std::vector<Item>& batch, std::vector<Command>& commands, bool tick,
                              bool force) {
  try {
    apply(batch, commands, tick);
    return must_commit(force) ? commit_open() : 0;
  } catch (const std::exception& ex) {
    fail_open(ex);
    throw;
  }
}

void Pipeline::run_hook_ticks(std::int64_t now) {
  for (auto* h : hooks_) {
    try {
      journal_.begin();
      h->on_tick(journal_, now);
      journal_.commit();
      h->after_commit({}, {});
    } catch (const std::exception& ex) {
      journal_.rollback();
      h->on_rollback(journal_);
      spdlog::error("periodic task failed: {}", ex.what());
    }
  }
}

std::size_t Pipeline::run_once() {
  std::vector<Item> batch = std::move(retry_);
  retry_.clear();
  std::vector<Command> commands;
  {
    std::lock_guard lock(mu_);
    while (!queue_.empty() && batch.size() < static_cast<std::size_t>(options_.max_batch)) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    while (!commands_.empty()) {
      commands.push_back(std::move(commands_.front()));
      commands_.pop_front();
    }
  }
  not_full_.notify_all();
  const std::size_t n = process(batch, commands, true, /*force=*/true);
  for (auto* h : hooks_) {
    journal_.begin();
    try {
      h->on_tick(journal_, clock_.wall_ms());
      journal_.commit();
      h->after_commit({}, {});
    } catch (...) {
      journal_.rollback();
      throw;
    }
  }
  return n;
}

void Pipeline::loop() {
  std::int64_t backoff_ms = 50;
  std::vector<Item> batch;
  std::vector<Command> commands;
  for (;;) {
    heartbeat_ms_.store(clock_.mono_ns() / 1'000'000, std::memory_order_relaxed);
    bool stop_now = false;
    {
      std::unique_lock lock(mu_);
      if (retry_.empty()) {
        const std::int64_t now = clock_.wall_ms();
        std::int64_t deadline =
            std::min(next_deadline_ms(), last_tick_ms_ + options_.tick_interval_ms);
        if (open_.active)
          deadline =
              std::min(deadline, now + std::max<std::int64_t>(0, open_.opened_mono_ns / 1'000'000 +
                                                                     options_.quiet_commit_ms -
                                                                     clock_.mono_ns() / 1'000'000));
        const auto wait_ms = std::clamp<std::int64_t>(deadline - now, 0, options_.tick_interval_ms);
        not_empty_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                            [&] { return stopping_ || !queue_.empty() || !commands_.empty(); });
        if (!open_.active && !queue_.empty() && options_.commit_window_ms > 0 &&
            queue_.size() < static_cast<std::size_t>(options_.max_batch) && !stopping_) {
          not_empty_.wait_for(lock, std::chrono::milliseconds(options_.commit_window_ms), [&] {
            return stopping_ || queue_.size() >= static_cast<std::size_t>(options_.max_batch);
          });
        }
        const std::size_t room =
            static_cast<std::size_t>(options_.max_batch) -
            std::min(open_.items.size(), static_cast<std::size_t>(options_.max_batch));
        while (!queue_.empty() && batch.size() < std::max<std::size_t>(room, 1)) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      } else {
        batch = std::move(retry_);
        retry_.clear();
      }
      while (!commands_.empty()) {
        commands.push_back(std::move(commands_.front()));
        commands_.pop_front();
      }
      stop_now = stopping_ && queue_.empty() && commands_.empty() && retry_.empty();
    }
    not_full_.notify_all();
    const std::int64_t now = clock_.wall_ms();
    const bool tick = now >= last_tick_ms_ + options_.tick_interval_ms || now >= next_deadline_ms();
    try {
      process(batch, commands, tick, /*force=*/tick || stop_now);
      backoff_ms = 50;
    } catch (const std::exception&) {
      // Keep the events and retry: nothing accepted is dropped. If we are stopping, what is left
      // stays in the inbox and is replayed at the next start.
      batch.clear();
      commands.clear();
      bool stopping;
      {
        std::unique_lock lock(mu_);
        committed_cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms),
                               [&] { return stopping_; });
        stopping = stopping_;
      }
      if (stopping) break;
      backoff_ms = std::min<std::int64_t>(backoff_ms * 2, 5000);
      continue;
    }
    if (tick) {
      last_tick_ms_ = now;
      run_hook_ticks(now);
    }
    if (!open_.active && now - last_retention_ms_ >= options_.retention_interval_ms) {
      // Small batches, one transaction each, re-checking the queue in between: ingest waits at
      // most one batch.
      last_retention_ms_ = now;
      try {
        const int n = journal_.retention_step(now, options_.retention_batch);
        if (n > 0) {
          std::lock_guard lock(mu_);
          stats_.retention_deleted += n;
          if (n == options_.retention_batch)
            last_retention_ms_ = now - options_.retention_interval_ms;
        }
      } catch (const std::exception& ex) {
        spdlog::error("retention step failed: {}", ex.what());
      }
    }
    if (stop_now && !open_.active) break;
  }
}

}  // namespace anju::edge
