#include "metadata/metadata_parser.h"

#include <cstring>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <pugixml.hpp>

#include "common/strings.h"
#include "metadata/text_util.h"

namespace sgw::metadata {

namespace {

using common::make_error;
using detail::add_warning;
using detail::fold_name;
using detail::local_name;
using detail::sanitize_utf8;

constexpr std::string_view kNsRfc7865 = "urn:ietf:params:xml:ns:recording:1";  // RFC 7865 §9.1
constexpr std::string_view kNsDraft = "urn:ietf:params:xml:ns:recording";       // draft-ietf-siprec-metadata
constexpr std::string_view kNsSiprec = "urn:ietf:params:xml:ns:siprec";         // draft-ram / BroadWorks

constexpr std::size_t kMaxFieldsPerExtension = 256;

// Visits `top` and every element below it, in document order, without recursion (the tree
// can be as deep as the input allows before the depth check has run). fn(node, depth) with
// depth 0 for `top`; returning false stops the walk.
template <typename Fn>
void walk_elements(pugi::xml_node top, Fn&& fn) {
  pugi::xml_node cur = top;
  unsigned depth = 0;
  while (cur) {
    if (cur.type() == pugi::node_element) {
      if (!fn(cur, depth)) return;
    }
    if (cur.type() == pugi::node_element && cur.first_child()) {
      cur = cur.first_child();
      ++depth;
      continue;
    }
    while (cur != top && !cur.next_sibling()) {
      cur = cur.parent();
      --depth;
    }
    if (cur == top) return;
    cur = cur.next_sibling();
  }
}

bool is_xmlns_attribute(std::string_view name) {
  return name == "xmlns" || name.substr(0, 6) == "xmlns:";
}

// Namespace URI of an element, resolved through the xmlns declarations on it and its
// ancestors (XML Namespaces 1.0 §6). Empty when unbound.
std::string_view namespace_of(pugi::xml_node node) {
  const std::string_view name = node.name();
  const auto colon = name.find(':');
  const std::string decl =
      colon == std::string_view::npos ? std::string("xmlns") : "xmlns:" + std::string(name.substr(0, colon));
  for (pugi::xml_node n = node; n && n.type() == pugi::node_element; n = n.parent()) {
    if (pugi::xml_attribute a = n.attribute(decl.c_str())) return a.value();
  }
  return {};
}

// Direct character data of an element (PCDATA and CDATA children), trimmed, valid UTF-8.
std::string text_of(pugi::xml_node node) {
  std::string raw;
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) raw += c.value();
  }
  return sanitize_utf8(common::trim(raw));
}

// A time element's value: its own text, or (some SRCs wrap the value in a child, e.g.
// <associate-time><time>...</time></associate-time>) the first non-empty text below it.
std::string time_of(pugi::xml_node node) {
  std::string v = text_of(node);
  if (!v.empty()) return v;
  walk_elements(node, [&](pugi::xml_node el, unsigned) {
    v = text_of(el);
    return v.empty();
  });
  return v;
}

std::string without_whitespace(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out.push_back(c);
  }
  return out;
}

// First attribute whose folded local name is one of `folded_names` (checked in that order).
std::optional<std::string> attribute_of(pugi::xml_node node, std::initializer_list<std::string_view> folded_names) {
  for (std::string_view wanted : folded_names) {
    for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
      const std::string_view name = a.name();
      if (is_xmlns_attribute(name)) continue;
      if (fold_name(local_name(name)) == wanted) return sanitize_utf8(common::trim(a.value()));
    }
  }
  return std::nullopt;
}

class StringWriter final : public pugi::xml_writer {
 public:
  void write(const void* data, std::size_t size) override { out.append(static_cast<const char*>(data), size); }
  std::string out;
};

// Builds the model from a parsed, depth-checked document. One instance per parse() call.
class Builder {
 public:
  explicit Builder(std::string_view root_ns) : root_ns_(root_ns) {}

  RecordingMetadata take() && { return std::move(md_); }
  RecordingMetadata& md() { return md_; }

  void build(pugi::xml_node root) {
    for (pugi::xml_node c = root.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      if (!is_model_element(c)) {
        md_.extensions.push_back(make_extension(c));
        continue;
      }
      const std::string kind = fold_name(local_name(c.name()));
      if (kind == "datamode") {
        set_data_mode(text_of(c));
      } else if (kind == "group") {
        on_group(c);
      } else if (kind == "session") {
        on_session(c, std::nullopt);
      } else if (kind == "participant") {
        on_participant(c, std::nullopt);
      } else if (kind == "stream") {
        on_stream(c, std::nullopt);
      } else if (kind == "sessionrecordingassoc") {
        on_session_recording_assoc(c);
      } else if (kind == "participantsessionassoc") {
        on_participant_session_assoc(c);
      } else if (kind == "participantstreamassoc") {
        on_participant_stream_assoc(c);
      } else if (auto parent = attribute_of(c, {"parent"}); kind == "extensiondata" && parent) {
        // draft-ram-siprec-metadata-format / BroadWorks: <extensiondata parent="ID"> at the
        // root belongs to the group, session, participant or stream with that id.
        parented_.emplace_back(std::move(*parent), make_extension(c));
      } else {
        md_.extensions.push_back(make_extension(c));
      }
    }
    finish();
  }

 private:
  // Elements in the root's namespace, or in none (some SRCs prefix only the root), are ours;
  // anything in another namespace is an extension (RFC 7865 §6.9).
  bool is_model_element(pugi::xml_node n) const {
    const std::string_view ns = namespace_of(n);
    return ns.empty() || ns == root_ns_;
  }

  std::string kind_of(pugi::xml_node n) const {
    return is_model_element(n) ? fold_name(local_name(n.name())) : std::string();
  }

  void set_data_mode(const std::string& text) {
    const std::string v = fold_name(text);
    if (v == "complete") {
      md_.data_mode = DataMode::kComplete;
    } else if (v == "partial") {
      md_.data_mode = DataMode::kPartial;
    } else {
      add_warning(md_.warnings, "unknown datamode '" + text + "', treated as complete");
      md_.data_mode = DataMode::kComplete;
    }
  }

  // RFC 7865 §6.2 <group group_id=...>; the legacy format nests <session> inside it.
  void on_group(pugi::xml_node n) {
    const std::string id = attribute_of(n, {"groupid", "id"}).value_or("");
    if (id.empty()) add_warning(md_.warnings, "group without id");
    Group& g = find_or_add(md_.groups, group_index_, id);
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string kind = kind_of(c);
      if (kind == "associatetime") {
        g.associate_time = time_of(c);
      } else if (kind == "disassociatetime") {
        g.disassociate_time = time_of(c);
      } else if (kind == "session") {
        on_session(c, id);
      } else {
        g.extensions.push_back(make_extension(c));
      }
    }
  }

  // RFC 7865 §6.3 <session session_id=...>; draft: <session id=...>. Legacy documents nest
  // participants and streams inside the session.
  void on_session(pugi::xml_node n, const std::optional<std::string>& parent_group) {
    const std::string id = attribute_of(n, {"sessionid", "id"}).value_or("");
    if (id.empty()) add_warning(md_.warnings, "session without id");
    std::size_t idx = index_of(md_.sessions, session_index_, id);
    if (parent_group) md_.sessions[idx].group_id = *parent_group;
    if (auto g = attribute_of(n, {"groupref", "groupid", "group"})) md_.sessions[idx].group_id = *g;
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string kind = kind_of(c);
      // md_.sessions may grow below (a nested participant can reference a new session), so
      // re-fetch by index instead of holding a reference across calls.
      if (kind == "sipsessionid") {
        // RFC 7989 Session-ID has no whitespace; RFC 7865 §8's example wraps it over two lines.
        std::string v = without_whitespace(text_of(c));
        if (!v.empty()) md_.sessions[idx].sip_session_ids.push_back(std::move(v));
      } else if (kind == "groupref") {
        md_.sessions[idx].group_id = text_of(c);
      } else if (kind == "starttime") {
        md_.sessions[idx].start_time = time_of(c);
      } else if (kind == "stoptime") {
        md_.sessions[idx].stop_time = time_of(c);
      } else if (kind == "associatetime") {
        md_.sessions[idx].associate_time = time_of(c);
      } else if (kind == "disassociatetime") {
        md_.sessions[idx].disassociate_time = time_of(c);
      } else if (kind == "participant") {
        on_participant(c, id);
      } else if (kind == "stream") {
        on_stream(c, id);
      } else {
        Extension e = make_extension(c);
        md_.sessions[idx].extensions.push_back(std::move(e));
      }
    }
  }

  // RFC 7865 §6.5 <participant participant_id=...>; draft: <participant id=... session=...>
  // with <send>/<recv>/<associate-time> inside it; legacy: <aor>/<name> directly inside.
  void on_participant(pugi::xml_node n, const std::optional<std::string>& parent_session) {
    const std::string id = attribute_of(n, {"participantid", "id"}).value_or("");
    if (id.empty()) add_warning(md_.warnings, "participant without id");
    const std::size_t idx = index_of(md_.participants, participant_index_, id);
    std::optional<std::string> session = attribute_of(n, {"sessionid", "session", "sessionref"});
    if (!session) session = parent_session;
    std::optional<std::string> assoc_time;
    std::optional<std::string> disassoc_time;
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      Participant& p = md_.participants[idx];
      const std::string kind = kind_of(c);
      if (kind == "nameid") {
        if (auto aor = attribute_of(c, {"aor"}); aor && !aor->empty()) p.aors.push_back(std::move(*aor));
        for (pugi::xml_node nc = c.first_child(); nc; nc = nc.next_sibling()) {
          if (nc.type() != pugi::node_element) continue;
          const std::string nk = kind_of(nc);
          if (nk == "name") {
            add_name(p, nc);
          } else if (nk == "aor") {
            add_aor(p, text_of(nc));
          } else {
            p.extensions.push_back(make_extension(nc));
          }
        }
      } else if (kind == "aor") {
        add_aor(p, text_of(c));
      } else if (kind == "name") {
        add_name(p, c);
      } else if (kind == "send") {
        add_stream_refs(p.send, c);
      } else if (kind == "recv") {
        add_stream_refs(p.recv, c);
      } else if (kind == "associatetime" || kind == "starttime") {
        // draft-ram-siprec-metadata-format and early Acme Packet releases: <start-time>.
        assoc_time = time_of(c);
      } else if (kind == "disassociatetime" || kind == "endtime" || kind == "stoptime") {
        disassoc_time = time_of(c);
      } else {
        p.extensions.push_back(make_extension(c));
      }
    }
    if (session || assoc_time || disassoc_time) {
      SessionAssociation& a = find_or_add_association(md_.participants[idx], session.value_or(""));
      if (assoc_time) a.associate_time = std::move(assoc_time);
      if (disassoc_time) a.disassociate_time = std::move(disassoc_time);
    }
  }

  // RFC 7865 §6.4 <stream stream_id=... session_id=...><label>; draft: id=/session=, <mode>.
  void on_stream(pugi::xml_node n, const std::optional<std::string>& parent_session) {
    const std::optional<std::string> id_attr = attribute_of(n, {"streamid", "id"});
    const std::string id = id_attr.value_or("");
    Stream* s = nullptr;
    if (id.empty()) {
      // Keep every id-less stream: its label is what the SDP a=label refers to.
      md_.streams.emplace_back();
      s = &md_.streams.back();
    } else {
      s = &md_.streams[index_of(md_.streams, stream_index_, id)];
    }
    if (auto sess = attribute_of(n, {"sessionid", "session", "sessionref"})) {
      s->session_id = std::move(sess);
    } else if (parent_session) {
      s->session_id = parent_session;
    }
    if (auto label = attribute_of(n, {"label"})) s->label = *label;
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string kind = kind_of(c);
      if (kind == "label") {
        s->label = text_of(c);
      } else if (kind == "mode") {
        s->mode = text_of(c);
      } else if (kind == "associatetime" || kind == "disassociatetime") {
        // Draft streams carry times; the model tracks them on sessions and participants.
      } else {
        s->extensions.push_back(make_extension(c));
      }
    }
    if (id.empty()) {
      add_warning(md_.warnings, std::string(id_attr ? "stream with empty id" : "stream without id") +
                                    " (label '" + s->label + "')");
    }
  }

  // RFC 7865 §6.8 <sessionrecordingassoc session_id=...>.
  void on_session_recording_assoc(pugi::xml_node n) {
    const std::string id = attribute_of(n, {"sessionid", "session", "id"}).value_or("");
    if (id.empty()) {
      add_warning(md_.warnings, "sessionrecordingassoc without session id ignored");
      return;
    }
    Session& s = md_.sessions[index_of(md_.sessions, session_index_, id)];
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string kind = kind_of(c);
      if (kind == "associatetime") {
        s.associate_time = time_of(c);
      } else if (kind == "disassociatetime") {
        s.disassociate_time = time_of(c);
      } else {
        s.extensions.push_back(make_extension(c));
      }
    }
  }

  // RFC 7865 §6.6 <participantsessionassoc participant_id=... session_id=...>. A partial
  // update may reference a participant declared only in an earlier document.
  void on_participant_session_assoc(pugi::xml_node n) {
    const std::string pid = attribute_of(n, {"participantid", "participant"}).value_or("");
    const std::string sid = attribute_of(n, {"sessionid", "session"}).value_or("");
    if (pid.empty()) {
      add_warning(md_.warnings, "participantsessionassoc without participant id ignored");
      return;
    }
    Participant& p = md_.participants[index_of(md_.participants, participant_index_, pid)];
    SessionAssociation& a = find_or_add_association(p, sid);
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string kind = kind_of(c);
      if (kind == "associatetime") {
        a.associate_time = time_of(c);
      } else if (kind == "disassociatetime") {
        a.disassociate_time = time_of(c);
      } else {
        p.extensions.push_back(make_extension(c));
      }
    }
  }

  // RFC 7865 §6.7 <participantstreamassoc participant_id=...> with <send>/<recv> stream ids.
  void on_participant_stream_assoc(pugi::xml_node n) {
    const std::string pid = attribute_of(n, {"participantid", "participant"}).value_or("");
    if (pid.empty()) {
      add_warning(md_.warnings, "participantstreamassoc without participant id ignored");
      return;
    }
    Participant& p = md_.participants[index_of(md_.participants, participant_index_, pid)];
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string kind = kind_of(c);
      if (kind == "send") {
        add_stream_refs(p.send, c);
      } else if (kind == "recv") {
        add_stream_refs(p.recv, c);
      } else {
        p.extensions.push_back(make_extension(c));
      }
    }
  }

  static void add_aor(Participant& p, std::string aor) {
    if (!aor.empty()) p.aors.push_back(std::move(aor));
  }

  static void add_name(Participant& p, pugi::xml_node n) {
    std::string name = text_of(n);
    if (name.empty()) return;
    p.names.push_back(LocalizedName{attribute_of(n, {"lang"}).value_or(""), std::move(name)});
  }

  // <send>/<recv> name the stream ids a participant sends / receives, in any of the forms SRCs
  // use: the id as text (RFC 7865 §6.7, the drafts, Acme Packet), one or more <id> children
  // (BroadWorks and Webex: <send><id>urn:uuid:...</id></send>, draft-ram-siprec-metadata-format),
  // or an id / stream_id / streamref attribute. Children are matched on their local name in any
  // namespace; anything else inside is ignored.
  static void add_stream_refs(std::vector<std::string>& v, pugi::xml_node n) {
    split_stream_refs(v, text_of(n));
    if (auto a = attribute_of(n, {"id", "streamid", "streamref"})) split_stream_refs(v, *a);
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string kind = fold_name(local_name(c.name()));
      if (kind == "id" || kind == "streamid" || kind == "streamref") split_stream_refs(v, text_of(c));
    }
  }

  // One stream id per token; tolerate several separated by whitespace.
  static void split_stream_refs(std::vector<std::string>& v, const std::string& text) {
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) ++i;
      std::size_t j = i;
      while (j < text.size() && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' && text[j] != '\n') ++j;
      if (j > i) v.push_back(text.substr(i, j - i));
      i = j;
    }
  }

  static SessionAssociation& find_or_add_association(Participant& p, const std::string& session_id) {
    for (auto& a : p.sessions)
      if (a.session_id == session_id) return a;
    p.sessions.push_back(SessionAssociation{session_id, std::nullopt, std::nullopt});
    return p.sessions.back();
  }

  // Index of the entity with `id`, appending a new one when unseen. Entities with an empty id
  // are all distinct.
  template <typename T>
  static std::size_t index_of(std::vector<T>& v, std::unordered_map<std::string, std::size_t>& index,
                              const std::string& id) {
    if (!id.empty()) {
      if (auto it = index.find(id); it != index.end()) return it->second;
      index.emplace(id, v.size());
    }
    v.emplace_back();
    v.back().id = id;
    return v.size() - 1;
  }

  template <typename T>
  static T& find_or_add(std::vector<T>& v, std::unordered_map<std::string, std::size_t>& index,
                        const std::string& id) {
    return v[index_of(v, index, id)];
  }

  // Serialises an extension element as received and indexes its values. Also picks up the
  // first Sonus/Ribbon <callData> block it contains.
  Extension make_extension(pugi::xml_node n) {
    Extension e;
    pugi::xml_document scratch;
    pugi::xml_node copy = scratch.append_copy(n);
    declare_inherited_prefixes(n, copy);
    StringWriter w;
    copy.print(w, "", pugi::format_raw | pugi::format_no_declaration);
    e.xml = sanitize_utf8(w.out);

    walk_elements(n, [&](pugi::xml_node el, unsigned) {
      const std::string_view lname = local_name(el.name());
      if (e.fields.size() < kMaxFieldsPerExtension) {
        std::string text = text_of(el);
        if (!text.empty()) e.fields.push_back(ExtensionField{sanitize_utf8(lname), std::move(text)});
      }
      for (pugi::xml_attribute a = el.first_attribute(); a && e.fields.size() < kMaxFieldsPerExtension;
           a = a.next_attribute()) {
        if (is_xmlns_attribute(a.name())) continue;
        e.fields.push_back(ExtensionField{sanitize_utf8(local_name(a.name())), sanitize_utf8(common::trim(a.value()))});
      }
      if (!md_.call_data && fold_name(lname) == "calldata") md_.call_data = read_call_data(el);
      return true;
    });
    return e;
  }

  // The copy of an extension loses xmlns declarations made on its ancestors; re-declare the
  // prefixes it uses so its text is well-formed on its own.
  static void declare_inherited_prefixes(pugi::xml_node original, pugi::xml_node copy) {
    std::vector<std::string> used;  // in first-use order, so the output is deterministic
    std::unordered_set<std::string> used_set;
    std::unordered_set<std::string> declared;
    auto note = [&](std::string_view qname) {
      const auto colon = qname.find(':');
      if (colon == std::string_view::npos || colon == 0) return;
      std::string prefix(qname.substr(0, colon));
      if (prefix == "xml" || prefix == "xmlns") return;
      if (used_set.insert(prefix).second) used.push_back(std::move(prefix));
    };
    walk_elements(copy, [&](pugi::xml_node el, unsigned) {
      note(el.name());
      for (pugi::xml_attribute a = el.first_attribute(); a; a = a.next_attribute()) {
        const std::string_view name = a.name();
        if (name.substr(0, 6) == "xmlns:") {
          declared.emplace(name.substr(6));
        } else {
          note(name);
        }
      }
      return true;
    });
    for (const auto& prefix : used) {
      if (declared.count(prefix) != 0) continue;
      const std::string decl = "xmlns:" + prefix;
      for (pugi::xml_node a = original.parent(); a && a.type() == pugi::node_element; a = a.parent()) {
        if (pugi::xml_attribute d = a.attribute(decl.c_str())) {
          copy.append_attribute(decl.c_str()).set_value(d.value());
          break;
        }
      }
    }
  }

  // Sonus/Ribbon SBC: <callData> lists the original call's headers, with element names set by
  // the SBC's sipRecMetadataProfile; these are the usual spellings.
  static CallData read_call_data(pugi::xml_node n) {
    CallData cd;
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string_view lname = local_name(c.name());
      const std::string kind = fold_name(lname);
      std::string value = text_of(c);
      if (kind == "from" || kind == "fromhdr" || kind == "fromheader" || kind == "fromuri") {
        cd.from = std::move(value);
      } else if (kind == "to" || kind == "tohdr" || kind == "toheader" || kind == "touri") {
        cd.to = std::move(value);
      } else if (kind == "callid" || kind == "callidhdr" || kind == "sipcallid") {
        cd.call_id = std::move(value);
      } else if (kind == "gcid") {
        cd.gcid = std::move(value);
      } else if (cd.other_fields.size() < kMaxFieldsPerExtension) {
        cd.other_fields.push_back(ExtensionField{sanitize_utf8(lname), std::move(value)});
      }
    }
    return cd;
  }

  void finish() {
    for (auto& [parent, ext] : parented_) attach_to_parent(parent, std::move(ext));
    // Draft participants name their session by attribute; when they do not and the document
    // has exactly one session, that is the one.
    if (md_.sessions.size() == 1) {
      for (auto& p : md_.participants)
        for (auto& a : p.sessions)
          if (a.session_id.empty()) a.session_id = md_.sessions.front().id;
    }
    // Repeats were appended while building; drop them once, in linear time.
    for (auto& s : md_.sessions) detail::dedupe(s.sip_session_ids);
    for (auto& p : md_.participants) {
      detail::dedupe(p.aors);
      detail::dedupe(p.send);
      detail::dedupe(p.recv);
      if (!p.display_name.empty() || p.names.empty()) continue;
      p.display_name = p.names.front().name;
      for (const auto& n : p.names) {
        if (n.lang.empty()) {
          p.display_name = n.name;
          break;
        }
      }
    }
  }

  // Extension data declared at the root with parent="ID": on the entity with that id when the
  // document declares one (ids are unique across entity kinds in practice; sessions are tried
  // first), else kept at the root.
  void attach_to_parent(const std::string& parent, Extension ext) {
    if (auto it = session_index_.find(parent); it != session_index_.end()) {
      md_.sessions[it->second].extensions.push_back(std::move(ext));
    } else if (auto g = group_index_.find(parent); g != group_index_.end()) {
      md_.groups[g->second].extensions.push_back(std::move(ext));
    } else if (auto p = participant_index_.find(parent); p != participant_index_.end()) {
      md_.participants[p->second].extensions.push_back(std::move(ext));
    } else if (auto st = stream_index_.find(parent); st != stream_index_.end()) {
      md_.streams[st->second].extensions.push_back(std::move(ext));
    } else {
      md_.extensions.push_back(std::move(ext));
    }
  }

  std::string root_ns_;
  RecordingMetadata md_;
  std::vector<std::pair<std::string, Extension>> parented_;
  std::unordered_map<std::string, std::size_t> group_index_;
  std::unordered_map<std::string, std::size_t> session_index_;
  std::unordered_map<std::string, std::size_t> participant_index_;
  std::unordered_map<std::string, std::size_t> stream_index_;
};

// Case-insensitive search for "<!DOCTYPE": we refuse DTDs outright rather than rely on the
// parser skipping them (no internal subset is ever scanned, no entity ever defined).
bool has_doctype(std::string_view xml) {
  constexpr std::string_view kNeedle = "<!doctype";
  if (xml.size() < kNeedle.size()) return false;
  for (std::size_t i = 0; i + kNeedle.size() <= xml.size(); ++i) {
    if (xml[i] == '<' && common::iequals(xml.substr(i, kNeedle.size()), kNeedle)) return true;
  }
  return false;
}

}  // namespace

common::Result<RecordingMetadata> parse(std::string_view xml, const ParseLimits& limits) {
  if (xml.size() > limits.max_bytes) {
    return make_error("metadata.too_large", "metadata body of " + std::to_string(xml.size()) +
                                                " bytes exceeds the limit of " + std::to_string(limits.max_bytes));
  }
  if (has_doctype(xml)) return make_error("metadata.doctype", "metadata with a DOCTYPE is refused");

  pugi::xml_document doc;
  // Default flags minus DOCTYPE/PI/comments, plus whitespace PCDATA so extension data keeps
  // its formatting. pugixml expands only the five predefined entities and character references.
  constexpr unsigned kFlags = (pugi::parse_default | pugi::parse_ws_pcdata) & ~pugi::parse_doctype;
  const pugi::xml_parse_result r = doc.load_buffer(xml.data(), xml.size(), kFlags, pugi::encoding_auto);
  if (!r) {
    return make_error("metadata.xml",
                      std::string("malformed metadata XML: ") + r.description() + " at offset " + std::to_string(r.offset));
  }

  pugi::xml_node root = doc.document_element();
  if (!root) return make_error("metadata.xml", "metadata XML has no root element");

  bool too_deep = false;
  bool too_many_attributes = false;
  walk_elements(root, [&](pugi::xml_node el, unsigned depth) {
    if (depth + 1 > limits.max_depth) too_deep = true;
    unsigned attributes = 0;
    for (pugi::xml_attribute a = el.first_attribute(); a && !too_many_attributes; a = a.next_attribute()) {
      too_many_attributes = ++attributes > limits.max_attributes;
    }
    return !too_deep && !too_many_attributes;
  });
  if (too_deep) {
    return make_error("metadata.depth", "metadata XML nests deeper than " + std::to_string(limits.max_depth));
  }
  if (too_many_attributes) {
    return make_error("metadata.attributes",
                      "a metadata XML element has more than " + std::to_string(limits.max_attributes) + " attributes");
  }

  const std::string root_kind = fold_name(local_name(root.name()));
  if (root_kind != "recording" && root_kind != "recordingmetadata") {
    return make_error("metadata.not_recording",
                      "metadata root element is <" + sanitize_utf8(root.name()) + ">, not <recording>");
  }
  const std::string_view ns = namespace_of(root);

  Builder builder(ns);
  RecordingMetadata& md = builder.md();
  if (root_kind == "recordingmetadata") {
    md.dialect = Dialect::kLegacySiprec;
    if (ns != kNsSiprec) add_warning(md.warnings, "unexpected namespace '" + std::string(ns) + "' on <recording_metadata>");
  } else if (ns == kNsRfc7865) {
    md.dialect = Dialect::kRfc7865;
  } else if (ns == kNsDraft) {
    md.dialect = Dialect::kDraft;
  } else if (ns == kNsSiprec) {
    md.dialect = Dialect::kLegacySiprec;
  } else {
    // Unknown or missing namespace: RFC 7865 names its id attributes *_id, the drafts id=.
    bool rfc_style = false;
    walk_elements(root, [&](pugi::xml_node el, unsigned) {
      for (pugi::xml_attribute a = el.first_attribute(); a; a = a.next_attribute()) {
        const std::string f = fold_name(local_name(a.name()));
        if (f == "sessionid" || f == "participantid" || f == "streamid" || f == "groupid") rfc_style = true;
      }
      return !rfc_style;
    });
    md.dialect = rfc_style ? Dialect::kRfc7865 : Dialect::kDraft;
    add_warning(md.warnings, "unrecognised metadata namespace '" + std::string(ns) + "'");
  }
  builder.build(root);
  return std::move(builder).take();
}

}  // namespace sgw::metadata
