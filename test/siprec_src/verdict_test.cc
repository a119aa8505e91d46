#include "siprec_src/verdict.h"

#include <gtest/gtest.h>

namespace sgw::siprec_src {
namespace {

TEST(ByeVerdict, OnlyA2xxEndsTheCallCleanly) {
  EXPECT_EQ(bye_failure(200, false), "");
  EXPECT_EQ(bye_failure(202, false), "");
  // The recorder lost the call (restarted, or dropped the session): a failure, never "ok".
  EXPECT_EQ(bye_failure(481, false), "BYE answered 481: the recorder had lost the call");
  EXPECT_EQ(bye_failure(500, false), "BYE answered 500");
  EXPECT_EQ(bye_failure(408, false), "BYE answered 408");
  // No answer at all: our stack's timeout.
  EXPECT_EQ(bye_failure(408, true), "BYE unanswered: no final answer (local 408)");
  EXPECT_EQ(bye_failure(503, true), "BYE unanswered: no final answer (local 503)");
}

TEST(FailureKey, CodeElseTheReasonsHead) {
  EXPECT_EQ(failure_key(481, "BYE answered 481: the recorder had lost the call"), "481");
  EXPECT_EQ(failure_key(0, "BYE unanswered: no final answer (local 408)"), "BYE unanswered");
  EXPECT_EQ(failure_key(0, "gateway lost: keepalive OPTIONS answered 481"), "gateway lost");
  EXPECT_EQ(failure_key(0, "wall-clock limit reached"), "wall-clock limit reached");
  EXPECT_EQ(failure_key(0, ""), "unknown");
}

}  // namespace
}  // namespace sgw::siprec_src
