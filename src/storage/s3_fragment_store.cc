#include "storage/s3_fragment_store.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "storage/key_template.h"

namespace sgw::storage {

S3FragmentStore::S3FragmentStore(std::vector<Bucket> buckets, std::string prefix)
    : buckets_(std::move(buckets)), prefix_(std::move(prefix)) {
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
}

std::string S3FragmentStore::describe() const {
  std::string out;
  for (const auto& b : buckets_) out += (out.empty() ? "" : ", ") + ("s3://" + b.name + (prefix_.empty() ? "" : "/" + prefix_));
  return out;
}

S3Api* S3FragmentStore::resolve(const std::string& ref, std::string* key) const {
  for (const auto& b : buckets_) {
    std::string head = "s3://" + b.name + "/";
    if (ref.compare(0, head.size(), head) == 0) {
      *key = ref.substr(head.size());
      return b.client.get();
    }
  }
  return nullptr;
}

common::Result<std::vector<recording::FragmentStore::Candidate>> S3FragmentStore::candidates(
    const std::string& conversation_id) {
  const std::string named = KeyTemplate::sanitize(conversation_id);
  std::vector<Candidate> out;
  for (const auto& b : buckets_) {
    auto list = b.client->list_object_versions(prefix_.empty() ? std::string() : prefix_ + "/");
    if (!list) return list.error().to_error();
    for (const auto& v : *list) {
      if (!v.is_latest || v.delete_marker) continue;
      if (v.key.size() < 5 || v.key.compare(v.key.size() - 5, 5, ".json") != 0) continue;
      Candidate c{"s3://" + b.name + "/" + v.key, false};
      std::size_t from = 0;
      for (auto slash = v.key.find('/'); slash != std::string::npos; slash = v.key.find('/', from)) {
        // Components before the file name; the file is never the conversation.
        if (slash - from == named.size() && v.key.compare(from, slash - from, named) == 0) c.named = true;
        from = slash + 1;
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

common::Result<std::string> S3FragmentStore::read(const std::string& ref, std::uint64_t max_bytes) {
  std::string key;
  S3Api* client = resolve(ref, &key);
  if (client == nullptr) return common::make_error("conversation.ref", "not in this store: " + ref);
  auto head = client->head_object(key, {}, false);
  if (!head) return head.error().to_error();
  if (head->size > max_bytes)
    return common::make_error("conversation.too_large", ref + ": " + std::to_string(head->size) + " bytes");
  auto got = client->get_object(key);
  if (!got) return got.error().to_error();
  return std::move(got->body);
}

common::Result<std::string> S3FragmentStore::local_copy(const std::string& json_ref, const std::string& file_name,
                                                        const std::string& scratch_dir) {
  std::string json_key;
  S3Api* client = resolve(json_ref, &json_key);
  if (client == nullptr) return common::make_error("conversation.ref", "not in this store: " + json_ref);
  auto slash = json_key.rfind('/');
  std::string key = (slash == std::string::npos ? std::string() : json_key.substr(0, slash + 1)) + file_name;
  auto got = client->get_object(key);
  if (!got) return got.error().to_error();
  std::error_code ec;
  std::filesystem::create_directories(scratch_dir, ec);
  std::string path = (std::filesystem::path(scratch_dir) / (std::to_string(++copies_) + "-" + file_name)).string();
  if (auto st = common::write_file_atomically(path, got->body); !st) return st.error();
  return path;
}

}  // namespace sgw::storage
