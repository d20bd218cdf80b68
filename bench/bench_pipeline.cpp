// bench_pipeline: events/s through the Pipeline (inbox + journal + rules + CityBridge outbox hook,
// a real SQLite file) beside raw SQLite inserts of the same rows, for synchronous FULL and NORMAL;
// bytes written to disk per event; the average group-commit batch.
//
// Workload: 50,000 events from 50 devices as the zigbee2mqtt driver makes them: 40 climate
// sensors sending temperature readings and 10 leak sensors whose water_leak alarm toggles on
// every 20th event (each toggle changes an alert, so alert rows and outbox rows are written too).
// One producer thread submits one event per submit() call, as the driver does per message.
#include <spdlog/spdlog.h>

#include <iostream>

#include "anju/bridge/city_bridge.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/edge/rules.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"
#include "bench_util.hpp"

namespace {
using namespace anju;
using bench::SteadyClock;

constexpr int kEvents = 50'000;
constexpr int kDevices = 50;
constexpr int kLeakDevices = 10;  // devices 40..49
constexpr int kLeakEvery = 20;    // every 20th event is a leak toggle

// The demo configuration is the source of the rules, the commit window and the uplinked kinds.
const firmware::Config& demo_config() {
  static const firmware::Config c = [] {
    auto r = firmware::parse_config(firmware::demo_config_text(), "<embedded demo config>");
    if (!r.config) throw std::runtime_error("the embedded demo config does not parse");
    return *r.config;
  }();
  return c;
}

edge::RuleSettings demo_rules() {
  const auto& c = demo_config();
  return firmware::rule_settings(c);
}

std::vector<edge::Event> make_workload(const edge::Clock& clock) {
  std::vector<edge::Event> v;
  v.reserve(kEvents);
  std::vector<bool> leak_on(kDevices, false);
  for (int i = 0; i < kEvents; ++i) {
    if (i % kLeakEvery == kLeakEvery - 1) {
      const int d = kDevices - kLeakDevices + (i / kLeakEvery) % kLeakDevices;
      leak_on[d] = !leak_on[d];
      v.push_back(bench::driver_like_event(clock, d, true, leak_on[d], 0));
    } else {
      const int d = i % (kDevices - kLeakDevices);
      const double t = 20.0 + 0.1 * ((i * 7) % 60);  // 20.0 .. 25.9 C, below the threshold
      v.push_back(bench::driver_like_event(clock, d, false, false, t));
    }
  }
  return v;
}

struct PipelineResult {
  double seconds = 0;
  std::int64_t committed = 0;
  std::int64_t batches = 0;
  std::int64_t commit_failures = 0;
  std::int64_t alerts = 0;
  std::int64_t outbox_rows = 0;
  bench::ProcIo io;  // delta over the run
  bool complete = false;
};

PipelineResult run_pipeline(bool full, std::vector<edge::Event> events) {
  bench::TempDir dir("bench-pipeline");
  edge::JournalOptions jo;
  jo.path = dir / "anju.db";
  jo.synchronous_full = full;
  edge::OpenReport report;
  auto journal = edge::Journal::open(jo, &report);
  journal->start_checkpointer();  // as anjud does
  edge::SystemClock clock;
  edge::RuleEngine rules(demo_rules());

  const auto& cfg = demo_config();
  edge::PipelineOptions po;
  po.inbox_dir = dir / "inbox";
  po.commit_window_ms = cfg.journal.commit_window_ms;
  po.quiet_commit_ms = cfg.journal.quiet_commit_ms;
  po.max_batch = cfg.journal.max_batch;
  edge::Pipeline pipeline(*journal, rules, clock, po);

  bridge::OutboxCounters counters;
  bridge::CityBridgeOptions bo;
  bo.site = cfg.site.id;
  bo.grid_code = cfg.site.grid_code;
  for (const auto& k : cfg.uplink.event_kinds)
    if (auto kind = edge::event_kind_from_string(k)) bo.event_kinds.insert(*kind);
  bo.summary_periods_ms = anju::firmware::summary_periods_ms(cfg.summary);
  bridge::CityBridge city(bo, *journal, counters, nullptr);
  pipeline.add_hook(&city);
  pipeline.start();

  PipelineResult r;
  const auto io0 = bench::read_proc_io();
  const auto t0 = SteadyClock::now();
  for (auto& e : events) pipeline.submit(std::move(e));
  r.complete = pipeline.wait_committed(std::chrono::seconds(30));
  const auto t1 = SteadyClock::now();
  const auto st = pipeline.stats();
  pipeline.stop();
  journal->stop_checkpointer();  // its last checkpoint counts: the raw runs end with one too
  const auto io1 = bench::read_proc_io();

  r.seconds = bench::seconds_between(t0, t1);
  r.committed = st.committed;
  r.batches = st.batches;
  r.commit_failures = st.commit_failures;
  r.io.write_bytes = io1.write_bytes - io0.write_bytes;
  r.io.cancelled_write_bytes = io1.cancelled_write_bytes - io0.cancelled_write_bytes;
  r.io.wchar = io1.wchar - io0.wchar;
  r.alerts = journal->db().scalar_i64("SELECT count(*) FROM alerts").value_or(0);
  for (int c = 0; c < bridge::kClasses; ++c) r.outbox_rows += counters.rows[c].load();
  return r;
}

struct RawResult {
  double seconds = 0;
  bench::ProcIo io;
};

// One row as the journal stores it: its columns and its (binary) body, encoded beforehand.
struct Row {
  std::string kind, device_id, body;
  std::int64_t ts_ms = 0;
  int severity = 4;
};

// The same rows into SQLite, in WAL mode with the same synchronous setting, in transactions of
// `batch` rows, with one prepared statement. `journal_schema`: the journal's events table (its
// columns and time index); else a bare (seq, body) table.
RawResult run_raw(bool full, const std::vector<Row>& rows, int batch, bool journal_schema) {
  bench::TempDir dir("bench-raw");
  edge::Db db(dir / "raw.db");
  db.exec("PRAGMA journal_mode=WAL");
  db.exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  if (journal_schema)
    edge::ensure_schema(db);
  else
    db.exec("CREATE TABLE events(seq INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  auto ins = db.prepare(journal_schema ? "INSERT INTO events(seq,ts_ms,kind,device_id,"
                                         "severity,body) VALUES(?,?,?,?,?,?)"
                                       : "INSERT INTO events(seq, body) VALUES(?, ?)");
  RawResult r;
  const auto io0 = bench::read_proc_io();
  const auto t0 = SteadyClock::now();
  std::int64_t seq = 1;
  for (std::size_t i = 0; i < rows.size();) {
    db.exec("BEGIN IMMEDIATE");
    for (int k = 0; k < batch && i < rows.size(); ++k, ++i) {
      const Row& row = rows[i];
      if (journal_schema)
        ins.bind(1, seq++)
            .bind(2, row.ts_ms)
            .bind(3, row.kind)
            .bind(4, row.device_id)
            .bind(5, row.severity)
            .bind_blob(6, row.body)
            .exec();
      else
        ins.bind(1, seq++).bind_blob(2, row.body).exec();
    }
    db.exec("COMMIT");
  }
  const auto t1 = SteadyClock::now();
  db.exec("PRAGMA wal_checkpoint(PASSIVE)");  // what the WAL still holds reaches the database
  const auto io1 = bench::read_proc_io();
  r.seconds = bench::seconds_between(t0, t1);
  r.io.write_bytes = io1.write_bytes - io0.write_bytes;
  r.io.wchar = io1.wchar - io0.wchar;
  return r;
}

}  // namespace

int main() {
  bench::Watchdog watchdog(std::chrono::seconds(55));
  spdlog::set_level(spdlog::level::warn);
  try {
    edge::SystemClock clock;
    bench::Table table("bench_pipeline: " + bench::fmt(kEvents) + " events from " +
                       std::to_string(kDevices) + " devices through the Pipeline vs raw SQLite");
    double body_bytes = 0;
    for (const bool full : {true, false}) {
      const char* mode = full ? "FULL" : "NORMAL";
      auto events = make_workload(clock);
      std::vector<Row> rows;
      rows.reserve(events.size());
      for (const auto& e : events)
        rows.push_back({std::string(edge::to_string(e.kind)), e.device.id, edge::encode_binary(e),
                        e.ts_ms, e.severity});
      double total = 0;
      for (const auto& row : rows) total += static_cast<double>(row.body.size());
      body_bytes = total / static_cast<double>(rows.size());

      const auto p = run_pipeline(full, std::move(events));
      const double avg_batch =
          p.batches > 0 ? static_cast<double>(p.committed) / static_cast<double>(p.batches) : 1;
      const int raw_batch = std::max(1, static_cast<int>(std::lround(avg_batch)));
      const auto raw = run_raw(full, rows, raw_batch, true);
      const auto bare = run_raw(full, rows, raw_batch, false);

      const double anju_rate = p.complete ? kEvents / p.seconds : NAN;
      const double raw_rate = kEvents / raw.seconds;
      const double ratio = anju_rate / raw_rate;
      table.add(std::string("events/s, synchronous=") + mode, bench::fmt(anju_rate),
                bench::fmt(raw_rate) + " (raw inserts)", bench::pct(ratio), ">= 50 % of raw",
                bench::met(p.complete && ratio >= 0.5));
      const double bare_rate = kEvents / bare.seconds;
      table.add(std::string("  same, vs a bare (seq, body) table, ") + mode, bench::fmt(anju_rate),
                bench::fmt(bare_rate) + " (bare inserts)", bench::pct(anju_rate / bare_rate), "-",
                "-");
      // Disk bytes: what the kernel accounted as dirtied for storage, minus what it never wrote
      // because the file was deleted first (inbox segments once committed).
      const double wb =
          static_cast<double>(p.io.write_bytes - p.io.cancelled_write_bytes) / kEvents;
      const double raw_wb = static_cast<double>(raw.io.write_bytes) / kEvents;
      table.add(std::string("disk bytes written/event, ") + mode, bench::fmt(wb),
                bench::fmt(raw_wb) + " (raw inserts)", bench::pct(wb / raw_wb), "<= 1,024 B",
                bench::met(wb <= 1024));
      const double wc = static_cast<double>(p.io.wchar) / kEvents;
      const double raw_wc = static_cast<double>(raw.io.wchar) / kEvents;
      table.add(std::string("write() bytes/event, ") + mode, bench::fmt(wc),
                bench::fmt(raw_wc) + " (raw inserts)", bench::pct(wc / raw_wc), "-", "-");
      table.add(std::string("avg batch (committed/batches), ") + mode, bench::fmt(avg_batch, 1),
                std::to_string(raw_batch) + " (fixed)", "-", "-", "-");
      table.note(std::string(mode) + ": pipeline " + bench::fmt(p.seconds, 3) + " s, " +
                 std::to_string(p.committed) + " committed in " + std::to_string(p.batches) +
                 " batches, " + std::to_string(p.commit_failures) + " commit failures, " +
                 std::to_string(p.alerts) + " alerts, " + std::to_string(p.outbox_rows) +
                 " outbox rows; raw " + bench::fmt(raw.seconds, 3) + " s" +
                 (p.complete ? "" : "; PIPELINE DID NOT FINISH within 30 s"));
    }
    table.note("event body (journal, binary form) " + bench::fmt(body_bytes) +
               " B on average; raw = the same rows (columns and body, encoded beforehand) into "
               "the journal's events table (same schema and time index), WAL, same synchronous, "
               "same batch size as the pipeline's average, one prepared statement; bare = the "
               "bodies alone into a (seq, body) table");
    table.note(
        "disk bytes = /proc/self/io write_bytes - cancelled_write_bytes delta (pages dirtied "
        "for storage incl. the inbox, WAL and checkpoints, minus inbox pages deleted before "
        "writeback); write() bytes = wchar delta (the inbox is a shared mapping: not in it)");
    table.note("machine: " + bench::machine_line());
    table.print();
  } catch (const std::exception& e) {
    std::cerr << "bench_pipeline: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
