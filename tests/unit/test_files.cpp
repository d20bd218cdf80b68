// write_file_atomic (edge/src/files.cpp): the new content whole, the mode asked for, no temporary
// file left behind, and a clear error naming the file when it cannot be written.
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "anju/edge/files.hpp"

namespace fs = std::filesystem;

TEST_CASE("write_file_atomic replaces a file whole, with its mode", "[files]") {
  const fs::path dir = fs::temp_directory_path() / ("anju-files-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "state.json").string();
  CHECK(anju::edge::write_file_atomic(path, "first\n", 0600).empty());
  CHECK(anju::edge::write_file_atomic(path, "second\n", 0640).empty());
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == "second\n");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  CHECK(files == 1);  // no temporary file left
  const std::string missing = (dir / "no-such-dir" / "x.json").string();
  const std::string err = anju::edge::write_file_atomic(missing, "x", 0600);
  CHECK(err.starts_with("cannot create " + missing + ".tmp-"));
  CHECK(err.ends_with("No such file or directory"));
  fs::remove_all(dir);
}
