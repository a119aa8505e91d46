#include "storage/s3_fragment_store.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "storage/key_template.h"

namespace sgw::storage {

S3FragmentStore::S3FragmentStore(std::unique_ptr<S3Api> client, std::string bucket, std::string prefix)
    : client_(std::move(client)), bucket_(std::move(bucket)), prefix_(std::move(prefix)) {
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
}

std::string S3FragmentStore::describe() const {
  return "s3://" + bucket_ + (prefix_.empty() ? "" : "/" + prefix_);
}

common::Result<std::vector<recording::FragmentStore::Candidate>> S3FragmentStore::candidates(
    const std::string& conversation_id) {
  auto list = client_->list_object_versions(prefix_.empty() ? std::string() : prefix_ + "/");
  if (!list) return list.error().to_error();
  const std::string named = KeyTemplate::sanitize(conversation_id);
  std::vector<Candidate> out;
  for (const auto& v : *list) {
    if (!v.is_latest || v.delete_marker) continue;
    if (v.key.size() < 5 || v.key.compare(v.key.size() - 5, 5, ".json") != 0) continue;
    Candidate c{v.key, false};
    std::size_t from = 0;
    while (from <= v.key.size()) {
      auto slash = v.key.find('/', from);
      if (slash == std::string::npos) break;  // the last component is the file
      if (v.key.compare(from, slash - from, named) == 0 && slash - from == named.size()) c.named = true;
      from = slash + 1;
    }
    out.push_back(std::move(c));
  }
  return out;
}

common::Result<std::string> S3FragmentStore::read(const std::string& ref, std::uint64_t max_bytes) {
  auto head = client_->head_object(ref, {}, false);
  if (!head) return head.error().to_error();
  if (head->size > max_bytes)
    return common::make_error("conversation.too_large", describe() + " " + ref + ": " + std::to_string(head->size) + " bytes");
  auto got = client_->get_object(ref);
  if (!got) return got.error().to_error();
  return std::move(got->body);
}

common::Result<std::string> S3FragmentStore::local_copy(const std::string& json_ref, const std::string& file_name,
                                                        const std::string& scratch_dir) {
  auto slash = json_ref.rfind('/');
  std::string key = (slash == std::string::npos ? std::string() : json_ref.substr(0, slash + 1)) + file_name;
  auto got = client_->get_object(key);
  if (!got) return got.error().to_error();
  std::error_code ec;
  std::filesystem::create_directories(scratch_dir, ec);
  std::string path = (std::filesystem::path(scratch_dir) / (std::to_string(++copies_) + "-" + file_name)).string();
  if (auto st = common::write_file_atomically(path, got->body); !st) return st.error();
  return path;
}

}  // namespace sgw::storage
