// Safetensors reading, writing and every malformed-header case: each must be
// rejected with a message naming the file and the offending tensor/field.
// Also the file rules under them: only regular files are read (a FIFO must
// not hang, /dev/zero must not be read forever), text reads are bounded,
// unpadded headers are accepted, temporary files are never written through a
// symlink, and the signal handler removes registered partial outputs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/temp_file.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string Image(const std::string& header, size_t data_bytes, uint64_t declared_len = UINT64_MAX) {
  std::string s(8, '\0');
  const uint64_t len = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::memcpy(s.data(), &len, 8);
  return s + header + std::string(data_bytes, '\x01');
}

Expected<std::vector<TensorInfo>> Parse(const std::string& image) {
  return SafetensorsFile::ParseImage(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "x.safetensors",
                                     nullptr);
}

void ExpectError(const std::string& image, const std::string& needle) {
  auto r = Parse(image);
  ASSERT_FALSE(r.ok()) << "accepted: " << needle;
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("x.safetensors"), std::string::npos) << r.status().message();
}

TEST(Safetensors, ParsesValidHeader) {
  auto r = Parse(Image(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
                       R"("b":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[12,16]}})",
                       16));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].numel(), 6);
}

TEST(Safetensors, RejectsMalformedFiles) {
  ExpectError(std::string(5, '\0'), "too short");
  ExpectError(Image("{}", 0, 1000), "past the end of the file");
  ExpectError(Image("{}", 0, (200ull << 20)), "exceeds");
  ExpectError(Image("{not json", 0), "not a JSON object");
  ExpectError(Image("[1,2]", 0), "not a JSON object");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 4), "'a'");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 4), "past the end");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}})", 4), "does not match");
  ExpectError(Image(R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,4]}})", 4), "unknown dtype");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[-2],"data_offsets":[0,4]}})", 4), "shape");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[4,0]}})", 4), "begin > end");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2]}})", 4), "data_offsets");
  ExpectError(Image(R"({"a":{"shape":[2],"data_offsets":[0,4]}})", 4), "dtype");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[2,6]}})",
                    8),
              "overlap");
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                    R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                    16),
              "overlap");
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16),
              "too large");
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(DSV3_TEST_TMP) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  fs::path dir_;
};

using SafetensorsFiles = TempDir;

TEST_F(SafetensorsFiles, WriterRoundTripsAndLeavesNoTempFile) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> b = {7, 8, 9};
  const std::string path = (dir_ / "t.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, {{{"a", DType::kF32, {2, 3}}, a.data()}, {{"b", DType::kBF16, {3}}, b.data()}},
                               {{"format", "pt"}})
                  .ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const TensorInfo* t = (*f)->Find("a");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ShapeString(), "[2, 3]");
  EXPECT_EQ(std::memcmp(t->data, a.data(), 24), 0);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 8, 0u);  // aligned data section
}

TEST_F(SafetensorsFiles, UnfinishedWriterRemovesTempFile) {
  const std::string path = (dir_ / "t.safetensors").string();
  {
    auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {4}}});
    ASSERT_TRUE(w.ok());
    float x = 1;
    ASSERT_TRUE((*w)->Write(&x, 4).ok());
    EXPECT_FALSE((*w)->Finish().ok());  // 4 of 16 bytes
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(SafetensorsFiles, WriteFailureIsReported) {
  auto w = SafetensorsWriter::Create((dir_ / "missing_dir" / "t.safetensors").string(), {{"a", DType::kF32, {4}}});
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("cannot create"), std::string::npos);
}

TEST_F(SafetensorsFiles, TruncatedFileIsRejected) {
  const std::vector<float> a(64, 1.0f);
  const std::string path = (dir_ / "t.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, {{{"a", DType::kF32, {64}}, a.data()}}).ok());
  fs::resize_file(path, fs::file_size(path) - 10);
  auto f = SafetensorsFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("past the end"), std::string::npos) << f.status().message();
}

TEST_F(SafetensorsFiles, ShardedIndexIsFollowedAndChecked) {
  const std::vector<float> a = {1, 2}, b = {3, 4};
  ASSERT_TRUE(WriteSafetensors((dir_ / "s1.safetensors").string(), {{{"a", DType::kF32, {2}}, a.data()}}).ok());
  ASSERT_TRUE(WriteSafetensors((dir_ / "s2.safetensors").string(), {{{"b", DType::kF32, {2}}, b.data()},
                                                                    {{"extra", DType::kF32, {2}}, b.data()}})
                  .ok());
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})";
  auto store = TensorStore::Open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_NE((*store)->Find("a"), nullptr);
  EXPECT_NE((*store)->Find("b"), nullptr);
  EXPECT_EQ((*store)->Find("extra"), nullptr);  // not in the index: not part of the checkpoint
  // An index entry pointing at the wrong shard is an error naming the tensor.
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map":{"a":"s2.safetensors","b":"s2.safetensors"}})";
  store = TensorStore::Open(dir_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("'a'"), std::string::npos) << store.status().message();
  // A missing shard names the file.
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"a":"s9.safetensors"}})";
  store = TensorStore::Open(dir_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("s9.safetensors"), std::string::npos);
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"a":"../s1.safetensors"}})";
  EXPECT_FALSE(TensorStore::Open(dir_.string()).ok());
}

TEST_F(SafetensorsFiles, MissingCheckpointIsNamed) {
  auto store = TensorStore::Open(dir_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("model.safetensors"), std::string::npos);
}

// ---- which files are read, and how much ----

void ExpectOpenError(const Status& s, const std::string& needle) {
  ASSERT_FALSE(s.ok()) << "accepted: " << needle;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST_F(SafetensorsFiles, OnlyRegularFilesAreRead) {
  const std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Each would block (FIFO) or never end (/dev/zero) if opened plainly.
  ExpectOpenError(ReadTextFile(fifo).status(), "fifo: is not a regular file (a FIFO)");
  ExpectOpenError(MappedFile::Open(fifo).status(), "fifo: is not a regular file (a FIFO)");
  ExpectOpenError(SafetensorsFile::Open(fifo).status(), "is not a regular file (a FIFO)");
  ExpectOpenError(ReadTextFile("/dev/zero").status(), "/dev/zero: is not a regular file (a character device)");
  ExpectOpenError(ReadTextFile(dir_.string()).status(), "is not a regular file (a directory)");
  fs::create_directories(dir_ / "ckpt");
  fs::create_symlink("/dev/zero", dir_ / "ckpt" / "model.safetensors.index.json");
  ExpectOpenError(TensorStore::Open((dir_ / "ckpt").string()).status(), "index.json: is not a regular file");
  fs::remove(dir_ / "ckpt" / "model.safetensors.index.json");
  fs::create_symlink(fifo, dir_ / "ckpt" / "model.safetensors");
  ExpectOpenError(TensorStore::Open((dir_ / "ckpt").string()).status(), "is not a regular file (a FIFO)");
  // A symlink to a regular file is read like the file.
  std::ofstream(dir_ / "text") << "hello";
  fs::create_symlink(dir_ / "text", dir_ / "link");
  EXPECT_EQ(ReadTextFile((dir_ / "link").string()).value(), "hello");
}

TEST_F(SafetensorsFiles, TextReadsAreBounded) {
  const std::string path = (dir_ / "big.json").string();
  std::ofstream(path) << std::string(1000, ' ');
  EXPECT_EQ(ReadTextFile(path, 1000).value().size(), 1000u);
  ExpectOpenError(ReadTextFile(path, 999).status(), "big.json: 1000 bytes is more than");
  fs::resize_file(path, kMaxTextFileBytes + 1);  // sparse: nothing is written or read
  ExpectOpenError(ReadTextFile(path).status(), "bytes is more than the 256 MiB");
}

// A valid file whose header is not padded to 8 bytes (MLX writes these): the
// tensors sit at odd addresses in the mapping, and are found intact.
TEST_F(SafetensorsFiles, UnpaddedHeaderIsAccepted) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}})";
  ASSERT_NE((8 + header.size()) % 2, 0u);
  const float a[2] = {1.5f, -2.0f};
  const uint16_t b[3] = {0x3f80, 0x4000, 0xc040};
  std::string image = Image(header, 0);
  image.append(reinterpret_cast<const char*>(a), 8).append(reinterpret_cast<const char*>(b), 6);
  std::ofstream(dir_ / "u.safetensors", std::ios::binary) << image;
  auto f = SafetensorsFile::Open((dir_ / "u.safetensors").string());
  ASSERT_TRUE(f.ok()) << f.status().message();
  const TensorInfo* ta = (*f)->Find("a");
  const TensorInfo* tb = (*f)->Find("b");
  ASSERT_TRUE(ta && tb);
  EXPECT_NE(reinterpret_cast<uintptr_t>(ta->data) % 4, 0u);
  EXPECT_EQ(std::memcmp(ta->data, a, 8), 0);
  EXPECT_EQ(std::memcmp(tb->data, b, 6), 0);
}

// ---- temporary files ----

TEST_F(SafetensorsFiles, TempFileNeverWritesThroughALeftoverName) {
  const std::string path = (dir_ / "out.bin").string();
  std::ofstream(dir_ / "victim") << "precious";
  fs::create_symlink(dir_ / "victim", path + ".tmp");  // planted, or left by someone else
  {
    auto f = TempFile::Create(path);
    ASSERT_TRUE(f.ok()) << f.status().message();
    ASSERT_TRUE((*f)->Write("new", 3).ok());
    ASSERT_TRUE((*f)->Commit().ok());
  }
  EXPECT_EQ(ReadTextFile((dir_ / "victim").string()).value(), "precious");
  EXPECT_EQ(ReadTextFile(path).value(), "new");
  // A FIFO under the temporary name is not ours: refused, not opened.
  ASSERT_EQ(::mkfifo((path + ".tmp").c_str(), 0600), 0);
  ExpectOpenError(TempFile::Create(path).status(), "out.bin.tmp: exists and is not a regular file");
  EXPECT_TRUE(fs::is_fifo(path + ".tmp"));
}

TEST_F(SafetensorsFiles, CommitNeverReplacesASpecialFile) {
  const std::string path = (dir_ / "out.bin").string();
  auto f = TempFile::Create(path);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);  // appeared while writing
  ExpectOpenError((*f)->Commit(), "out.bin: exists and is not a regular file; not replaced");
  EXPECT_TRUE(fs::is_fifo(path));
  f->reset();
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

// A child registers a file and a nested directory, installs the handler and
// is sent SIGTERM: it dies of the signal and both are gone; an unregistered
// file stays.
TEST_F(SafetensorsFiles, SignalRemovesRegisteredPartialOutputs) {
  const fs::path file = dir_ / "out.gguf.tmp", stage = dir_ / "out.dsv3-partial", keep = dir_ / "keep";
  fs::create_directories(stage / "sub" / "deeper");
  for (const fs::path& p : {file, stage / "a.safetensors", stage / "sub" / "b", stage / "sub" / "deeper" / "c", keep})
    std::ofstream(p) << "x";
  fs::create_symlink(keep, stage / "link-out");  // removed as a link; its target stays
  const std::string file_path = file.string(), stage_path = stage.string(), keep_path = keep.string();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    InstallSignalCleanup();
    SignalCleanup::Register(file_path, false);
    SignalCleanup::Register(stage_path, true);
    SignalCleanup::Unregister(SignalCleanup::Register(keep_path, false));
    (void)!::write(ready[1], "r", 1);
    for (;;) ::pause();
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  EXPECT_FALSE(fs::exists(fs::symlink_status(file)));
  EXPECT_FALSE(fs::exists(fs::symlink_status(stage)));
  EXPECT_FALSE(fs::exists(dir_ / "out.dsv3-partial.dsv3-removing"));
  EXPECT_TRUE(fs::exists(keep));
  ::close(ready[0]);
  ::close(ready[1]);
}

}  // namespace
}  // namespace dsv3
