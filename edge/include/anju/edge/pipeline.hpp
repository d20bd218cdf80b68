// The pipeline: ingress queue → journal → rules → alerts, in one thread, with group commit.
//
//   drivers (any thread) ──submit()──► inbox file + bounded queue ──► pipeline thread:
//       BEGIN; append events (seq); rules; alert rows; hooks' rows (outbox); inbox position; COMMIT
//       then hooks' after_commit (local publish, uplink wake-up)
//
// submit() first appends the events to the inbox, a segmented append-only file in the data dir,
// then queues them. The inbox survives a crash of the process (the write() is in the kernel's page
// cache before submit returns), and every commit records how far into it the journal has got, so
// a restart replays exactly what was handed over but not yet committed. This is what lets a driver
// acknowledge a message to its source as soon as submit() returns.
//
// Thread: submit() and wait_*() from any thread; hooks run on the pipeline thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "anju/edge/alert.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/deriver.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/rules.hpp"

namespace anju::edge {

// The plug-in point for everything downstream of the journal.
class PipelineHook {
 public:
  virtual ~PipelineHook() = default;
  // Pipeline thread, inside the commit transaction: write derived rows (e.g. the outbox) so that
  // they commit atomically with the events. Throwing rolls the whole batch back (it is retried).
  virtual void in_transaction(Journal& /*journal*/, const std::vector<Event>& /*events*/,
                              const std::vector<AlertChange>& /*changes*/) {}
  // Pipeline thread, after the commit: notify others. Must not block. Also called, with empty
  // lists, after the on_tick transaction commits.
  virtual void after_commit(const std::vector<Event>& /*events*/,
                            const std::vector<AlertChange>& /*changes*/) {}
  // Pipeline thread, after the batch's transaction was rolled back (it will be retried): drop any
  // state derived from the rows that did not commit.
  virtual void on_rollback(Journal& /*journal*/) {}
  // Pipeline thread, about once a second, inside its own transaction (e.g. summaries).
  virtual void on_tick(Journal& /*journal*/, std::int64_t /*now_ms*/) {}
};

struct PipelineOptions {
  std::string inbox_dir;                // where the inbox segments live (created if missing)
  std::size_t queue_capacity = 20'000;  // events; submit() blocks beyond this
  int commit_window_ms = 1;             // after the first event of a batch, wait this long for more
  // A transaction holding only events that changed no alert stays open this long for more before
  // it commits (they are in the inbox already). Anything that changes an alert, a command, a
  // tick or a full batch commits at once. 1 s rather than 250 ms halves the bytes written per
  // event at a compound's 10 events/s (docs/FLASH.md: 11.0 KB -> 5.0 KB).
  std::int64_t quiet_commit_ms = 1000;
  int max_batch = 512;
  std::int64_t inbox_segment_bytes = 4 * 1024 * 1024;
  int retention_batch = 500;  // rows per retention transaction
  std::int64_t retention_interval_ms = 60'000;
  std::int64_t tick_interval_ms = 1000;
};

struct PipelineStats {
  std::size_t queue_depth = 0;
  std::size_t queue_capacity = 0;
  std::int64_t submitted = 0;
  std::int64_t committed = 0;  // events committed (including synthesized ones)
  std::int64_t batches = 0;
  std::int64_t replayed = 0;  // events recovered from the inbox at start
  std::int64_t commit_failures = 0;
  std::int64_t last_seq = 0;
  std::int64_t alerts_open = 0;
  std::int64_t retention_deleted = 0;
};

class Pipeline {
 public:
  Pipeline(Journal& journal, RuleEngine& rules, const Clock& clock, PipelineOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  void add_hook(PipelineHook* hook) { hooks_.push_back(hook); }
  // Before start(), like hooks.
  void add_deriver(EventDeriver* d) { derivers_.push_back(d); }

  // Replays the inbox (events handed over before a crash and not committed) into the queue, then
  // starts the pipeline thread. Hooks must be added before.
  void start(bool with_thread = true);
  // Stops taking input, commits everything queued, stops the thread.
  void stop();

  // Any thread. Events must be complete (id, time, device); seq is assigned at commit.
  // Blocks while the queue is full (back-pressure); returns false once stopped.
  bool submit(std::vector<Event> events);
  bool submit(Event e);

  // Any thread. A life-cycle command for an alert, applied by the pipeline thread in its next
  // transaction (with an alert_transition event in the journal and the change sent on like every
  // other). `done` runs on the pipeline thread after the commit, with `duplicate` true when the
  // request id was applied before (the stored result is returned, nothing changes). Must not
  // block. Returns false once stopped.
  using CommandDone = std::function<void(const CommandResult& result, bool duplicate)>;
  bool submit_command(AlertCommand cmd, CommandDone done);
  // The same for maintenance windows (kept in meta 'maintenance_windows', a maintenance event).
  bool submit_maintenance(MaintenanceCommand cmd, CommandDone done);

  // Waits until every event submitted before the call is committed, or the deadline passes.
  bool wait_committed(std::chrono::milliseconds timeout);
  PipelineStats stats() const;
  // CLOCK_MONOTONIC ms when the pipeline thread last went round its loop (it does at least once a
  // tick, 1 s): what a watchdog checks to know the thread is not stuck. 0 before start.
  std::int64_t heartbeat_mono_ms() const { return heartbeat_ms_.load(std::memory_order_relaxed); }

  // Runs one step by hand (tests with a ManualClock and no thread): commits what is queued and
  // runs the tick. Returns the number of events committed.
  std::size_t run_once();

 private:
  using AnyCommand = std::variant<AlertCommand, MaintenanceCommand>;
  struct Item {
    Event event;
    std::string body;  // encode_binary(event) as written to the inbox; the journal stores the same
    std::int64_t inbox_gen = 0;
    std::int64_t inbox_end = 0;  // offset just past this record in segment inbox_gen
  };
  void loop();
  using Command = std::pair<AnyCommand, CommandDone>;
  // The write transaction being filled (pipeline thread only).
  struct OpenTxn {
    bool active = false;
    std::int64_t opened_mono_ns = 0;
    std::vector<Item> items;  // from the queue, in order; their events are in `events` meanwhile
    std::vector<Event> events;
    std::vector<std::pair<std::size_t, std::size_t>> from_items;  // (index in events, in items)
    std::vector<AlertChange> changes;
    std::vector<Command> commands;
    std::vector<std::pair<CommandResult, bool>> results;
    // Empties it and keeps the vectors' memory for the next transaction.
    void clear();
  };
  // Adds events, commands and the tick's work to the open transaction (begun when there is
  // something to write), commits when must_commit says so. Returns the events committed.
  std::size_t process(std::vector<Item>& batch, std::vector<Command>& commands, bool tick,
                      bool force);
  void ensure_txn();
  void apply(std::vector<Item>& batch, std::vector<Command>& commands, bool tick);
  bool must_commit(bool force) const;
  std::size_t commit_open();
  void fail_open(const std::exception& ex);
  void run_hook_ticks(std::int64_t now);
  bool enqueue_command(AnyCommand cmd, CommandDone done);
  // A new event of the gateway's own (id, both times, boot id, clock state), for `kind`.
  Event gateway_event(EventKind kind, std::int64_t now) const;
  Event transition_event(const Alert& a, const std::string& request_id, const std::string& source,
                         std::int64_t now) const;
  void run_command(const AnyCommand& any, std::int64_t now, std::vector<Event>& events,
                   std::vector<AlertChange>& changes, CommandResult& result, bool& duplicate);
  void open_segment(std::int64_t gen);
  void close_segment();
  bool append_inbox(const std::string& record);  // under mu_
  void replay();
  std::string segment_path(std::int64_t gen) const;

  Journal& journal_;
  RuleEngine& rules_;
  const Clock& clock_;
  PipelineOptions options_;
  std::vector<PipelineHook*> hooks_;
  std::vector<EventDeriver*> derivers_;
  std::int64_t next_deadline_ms() const;  // rules' and derivers'
  // Journals and rules one derived event (stamped like the gateway's own).
  void append_derived(Event e, std::int64_t now);

  mutable std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::condition_variable committed_cv_;
  std::deque<Item> queue_;
  std::deque<std::pair<AnyCommand, CommandDone>> commands_;
  bool stopping_ = false;
  bool started_ = false;
  std::int64_t submitted_ = 0;
  std::int64_t committed_submitted_ = 0;  // how many of the submitted have committed
  PipelineStats stats_;

  // inbox (guarded by mu_)
  int inbox_fd_ = -1;
  char* inbox_map_ = nullptr;  // the segment, mapped shared (null: write() instead)
  std::int64_t inbox_map_size_ = 0;
  std::int64_t inbox_gen_ = 0;
  std::int64_t inbox_off_ = 0;
  std::int64_t committed_gen_ = 0;  // pipeline thread only

  OpenTxn open_;
  // The last transaction's buffers, emptied: the next one starts in them. A fresh OpenTxn per
  // commit grew every vector again, moving hundreds of events each time (a tenth of the pipeline
  // thread's time in bench_pipeline, most of it page faults on the new memory).
  OpenTxn spare_;
  std::vector<Item> retry_;  // events of a transaction that failed, applied again first
  std::int64_t last_tick_ms_ = 0;
  std::int64_t last_retention_ms_ = 0;
  std::atomic<std::int64_t> heartbeat_ms_{0};
  std::thread thread_;
};

}  // namespace anju::edge
