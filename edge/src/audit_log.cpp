#include "anju/edge/audit_log.hpp"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/event.hpp"
#include "anju/edge/journal.hpp"

namespace anju::edge {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kPrefix = "audit-";
constexpr std::string_view kSuffix = ".jsonl";

// The day files, oldest first (the names sort by day).
std::vector<fs::path> day_files(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() == kPrefix.size() + 8 + kSuffix.size() && name.starts_with(kPrefix) &&
        name.ends_with(kSuffix))
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string day_of(const fs::path& file) {
  return file.filename().string().substr(kPrefix.size(), 8);
}

// The last whole line of a file. A tail without its newline is a write cut short by a crash or a
// power cut (lines are appended whole, then synced): it was never durable, so it is cut off and
// its events are copied again from the journal.
std::string last_line(const fs::path& file, bool& truncated) {
  std::ifstream in(file, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::size_t end = text.size();
  if (end > 0 && text[end - 1] != '\n') {
    const std::size_t nl = text.rfind('\n');
    end = nl == std::string::npos ? 0 : nl + 1;
    std::error_code ec;
    fs::resize_file(file, end, ec);
    if (ec)
      throw std::runtime_error("audit log: cannot cut the torn last line of " + file.string() +
                               ": " + ec.message());
    truncated = true;
  }
  if (end == 0) return "";
  const std::size_t start = text.rfind('\n', end - 2);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - 1 - (start == std::string::npos ? 0 : start + 1));
}

void sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string sha256_hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

std::string utc_day(std::int64_t wall_ms) {
  const std::time_t t = static_cast<std::time_t>(wall_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

AuditLog::AuditLog(AuditLogOptions options) : o_(std::move(options)) {
  std::error_code ec;
  fs::create_directories(o_.dir, ec);
  if (ec) throw std::runtime_error("audit log: cannot create " + o_.dir + ": " + ec.message());
  ::chmod(o_.dir.c_str(), 0750);
  const auto files = day_files(o_.dir);
  // The newest line of the newest file that has one (a file created just before a crash may be
  // empty).
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    if (last_day_.empty()) last_day_ = day_of(*it);
    const std::string line = last_line(*it, repaired_);
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_integer())
      throw std::runtime_error("audit log: the last line of " + it->string() +
                               " is not a log line (changed by hand?); move the file aside to "
                               "start a new chain");
    last_seq_ = j["seq"].get<std::int64_t>();
    last_hash_ = sha256_hex(line);
    break;
  }
}

std::size_t AuditLog::catch_up(const Db& journal, std::int64_t now_ms, int limit) {
  EventQuery q;
  q.seq_from = last_seq_ + 1;
  q.kind = EventKind::audit;
  q.limit = limit;
  const auto events = query_events(journal, q);
  if (events.empty()) return 0;
  std::string day = utc_day(now_ms);
  if (!last_day_.empty() && day < last_day_) day = last_day_;  // the clock went back
  const std::string path =
      (fs::path(o_.dir) / (std::string(kPrefix) + day + std::string(kSuffix))).string();
  const bool is_new = !fs::exists(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    throw std::runtime_error("audit log: cannot open " + path + ": " + std::strerror(errno));
  std::string buf;
  std::string hash = last_hash_;
  std::int64_t seq = last_seq_;
  for (const auto& e : events) {
    const json line{{"seq", e.seq}, {"ts_ms", e.ts_ms}, {"prev", hash}, {"event", to_json(e)}};
    const std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace);
    buf += text;
    buf += '\n';
    hash = sha256_hex(text);
    seq = e.seq;
  }
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      throw std::runtime_error("audit log: cannot write " + path + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  const int synced = ::fdatasync(fd);
  ::close(fd);
  if (synced != 0)
    throw std::runtime_error("audit log: cannot sync " + path + ": " + std::strerror(errno));
  if (is_new) sync_dir(o_.dir);
  last_seq_ = seq;
  last_hash_ = hash;
  last_day_ = day;
  written_ += static_cast<std::int64_t>(events.size());
  return events.size();
}

std::size_t AuditLog::prune(std::int64_t now_ms) {
  const std::string oldest_kept =
      utc_day(now_ms - static_cast<std::int64_t>(o_.retention_days) * 86'400'000);
  auto files = day_files(o_.dir);
  if (!files.empty()) files.pop_back();  // never the newest: it carries the chain on
  std::size_t removed = 0;
  for (const auto& f : files) {
    if (day_of(f) >= oldest_kept) break;
    std::error_code ec;
    if (fs::remove(f, ec)) ++removed;
  }
  if (removed > 0) sync_dir(o_.dir);
  return removed;
}

AuditVerify verify_audit_log(const std::string& dir) {
  AuditVerify v;
  std::string prev_hash;
  std::int64_t prev_seq = 0;
  bool first = true;
  for (const auto& f : day_files(dir)) {
    ++v.files;
    std::ifstream in(f, std::ios::binary);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      auto fail = [&](const std::string& what) {
        v.ok = false;
        v.error = f.string() + ":" + std::to_string(n) + ": " + what;
        return v;
      };
      const json j = json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_integer() ||
          !j.contains("prev") || !j["prev"].is_string() || !j.contains("event") ||
          !j["event"].is_object())
        return fail("not an audit log line");
      const std::int64_t seq = j["seq"].get<std::int64_t>();
      if (!first && seq <= prev_seq)
        return fail("seq " + std::to_string(seq) + " after " + std::to_string(prev_seq) +
                    " (lines reordered or repeated)");
      // The first line kept may follow lines removed by retention: its prev is not checked.
      if (!first && j["prev"].get<std::string>() != prev_hash)
        return fail("the chain is broken: the line before it was changed or removed");
      if (j["event"].value("kind", "") != "audit") return fail("not an audit event");
      if (first) v.first_seq = seq;
      first = false;
      prev_seq = seq;
      prev_hash = sha256_hex(line);
      ++v.lines;
    }
  }
  v.last_seq = prev_seq;
  return v;
}

std::vector<std::string> audit_log_tail(const std::string& dir, std::size_t n) {
  std::deque<std::string> last;
  const auto files = day_files(dir);
  // From the newest file back, until n lines are found.
  for (auto it = files.rbegin(); it != files.rend() && last.size() < n; ++it) {
    std::ifstream in(*it, std::ios::binary);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) lines.push_back(std::move(line));
    for (auto l = lines.rbegin(); l != lines.rend() && last.size() < n; ++l) last.push_front(*l);
  }
  return {last.begin(), last.end()};
}

}  // namespace anju::edge
