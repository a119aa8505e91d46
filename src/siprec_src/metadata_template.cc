#include "siprec_src/metadata_template.h"

#include <array>
#include <cstdio>
#include <utility>

#include "common/ids.h"

namespace sgw::siprec_src {
namespace {

constexpr std::array<std::pair<std::string_view, Dialect>, 13> kNames = {{
    {"rfc7865", Dialect::kRfc7865},
    {"acme", Dialect::kAcme},
    {"audiocodes", Dialect::kAudioCodes},
    {"broadworks", Dialect::kBroadWorks},
    {"ribbon", Dialect::kRibbon},
    {"avaya", Dialect::kAvaya},
    {"cisco", Dialect::kCisco},
    {"genesys", Dialect::kRfc7865},
    {"draft", Dialect::kAcme},
    {"oracle", Dialect::kAcme},
    {"legacy", Dialect::kLegacy},
    {"webex", Dialect::kBroadWorks},
    {"sonus", Dialect::kRibbon},
}};

std::string hex32() {
  std::string u = common::uuid_v4();
  std::string out;
  for (char c : u)
    if (c != '-') out += c;
  return out;
}

// Short opaque id in the base64 look RFC 7865 SRCs use (22 chars + "==").
std::string opaque_id() {
  std::string h = hex32();
  return h.substr(0, 22) + "==";
}

struct Doc {
  std::string s;
  Doc& l(std::string_view line) {
    s.append(line);
    s.push_back('\n');
    return *this;
  }
};

std::string q(std::string_view v) { return xml_escape(v); }

// ---- RFC 7865 family (Genesys, Ribbon, Avaya) -------------------------------------------------

struct Rfc7865Style {
  std::string p;            // element prefix ("" or "rs:")
  bool camel = false;       // Avaya: dataMode, participantSessionAssoc, associateTime
  bool empty_stream_ids = false;
  bool genesys = false;     // GenesysParticipant purpose / GenesysConversationID
  bool ribbon = false;      // callData in the group
};

Rfc7865Style style_for(Dialect d) {
  Rfc7865Style s;
  if (d == Dialect::kRfc7865) s.genesys = true;
  if (d == Dialect::kRibbon) {
    s.p = "rs:";
    s.ribbon = true;
  }
  if (d == Dialect::kAvaya) {
    s.camel = true;
    s.empty_stream_ids = true;
  }
  return s;
}

std::string stream_ref(const Rfc7865Style& st, const CallIdentity& id, int i) {
  return st.empty_stream_ids ? std::to_string(i + 1) : id.stream_ids[i];
}

void rfc_participant(Doc& d, const Rfc7865Style& st, const Party& p, std::string_view purpose) {
  const std::string& P = st.p;
  d.l("  <" + P + "participant participant_id=\"" + q(p.id) + "\">");
  d.l("    <" + P + "nameID aor=\"" + q(p.aor) + "\">");
  d.l("      <" + P + "name xml:lang=\"en\">" + q(p.name) + "</" + P + "name>");
  d.l("    </" + P + "nameID>");
  if (st.genesys) {
    d.l("    <" + P + "extensiondata>");
    d.l("      <genesys:GenesysParticipant xmlns:genesys=\"urn:genesys:cloud:recording\" purpose=\"" +
        std::string(purpose) + "\" participantId=\"" + q(p.id) + "\"/>");
    d.l("    </" + P + "extensiondata>");
  }
  d.l("  </" + P + "participant>");
}

void rfc_session_assoc(Doc& d, const Rfc7865Style& st, const CallIdentity& id, const Party& p,
                       const std::string* assoc, const std::string* disassoc) {
  const std::string& P = st.p;
  std::string el = P + (st.camel ? "participantSessionAssoc" : "participantsessionassoc");
  d.l("  <" + el + " participant_id=\"" + q(p.id) + "\" session_id=\"" + q(id.session_id) + "\">");
  if (assoc) {
    std::string t = P + (st.camel ? "associateTime" : "associate-time");
    d.l("    <" + t + ">" + q(*assoc) + "</" + t + ">");
  }
  if (disassoc) {
    std::string t = P + (st.camel ? "disassociateTime" : "disassociate-time");
    d.l("    <" + t + ">" + q(*disassoc) + "</" + t + ">");
  }
  d.l("  </" + el + ">");
}

void rfc_stream_assoc(Doc& d, const Rfc7865Style& st, const CallIdentity& id, const Party& p,
                      std::vector<int> send, std::vector<int> recv) {
  const std::string& P = st.p;
  std::string el = P + (st.camel ? "participantStreamAssoc" : "participantstreamassoc");
  d.l("  <" + el + " participant_id=\"" + q(p.id) + "\">");
  for (int i : send) d.l("    <" + P + "send>" + q(stream_ref(st, id, i)) + "</" + P + "send>");
  for (int i : recv) d.l("    <" + P + "recv>" + q(stream_ref(st, id, i)) + "</" + P + "recv>");
  d.l("  </" + el + ">");
}

std::string rfc_open(const Rfc7865Style& st, bool partial) {
  const std::string& P = st.p;
  std::string root = st.p.empty() ? "<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">"
                                  : "<rs:recording xmlns:rs=\"urn:ietf:params:xml:ns:recording:1\">";
  std::string dm = P + (st.camel ? "dataMode" : "datamode");
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + root + "\n  <" + dm + ">" +
         (partial ? "partial" : "complete") + "</" + dm + ">\n";
}

std::string rfc_close(const Rfc7865Style& st) { return "</" + st.p + "recording>\n"; }

std::string rfc_complete(Dialect dl, const CallIdentity& id, const ParticipantState& ps) {
  Rfc7865Style st = style_for(dl);
  const std::string& P = st.p;
  Doc d;
  d.s = rfc_open(st, false);
  if (!st.camel) {
    d.l("  <" + P + "group group_id=\"" + q(id.group_id) + "\">");
    d.l("    <" + P + "associate-time>" + q(id.start_time) + "</" + P + "associate-time>");
    if (st.ribbon) {
      d.l("    <" + P + "extensiondata>");
      d.l("      <callData xmlns=\"http://sonusnet.com/siprec/calldata\">");
      d.l("        <gcid>" + q(id.conversation_id.substr(0, 8)) + "</gcid>");
      d.l("        <callid>" + q(id.recorded_call_id) + "</callid>");
      d.l("        <from>&lt;" + q(id.caller.aor) + "&gt;;tag=" + q(id.group_id.substr(0, 8)) + "</from>");
      d.l("        <to>&lt;" + q(id.agent.aor) + "&gt;</to>");
      d.l("        <ConversationID>" + q(id.conversation_id) + "</ConversationID>");
      d.l("      </callData>");
      d.l("    </" + P + "extensiondata>");
    }
    d.l("  </" + P + "group>");
  }
  d.l("  <" + P + "session session_id=\"" + q(id.session_id) + "\">");
  d.l("    <" + P + "sipSessionID>" + q(id.sip_session_id) + "</" + P + "sipSessionID>");
  if (!st.camel) d.l("    <" + P + "group-ref>" + q(id.group_id) + "</" + P + "group-ref>");
  d.l("    <" + P + (st.camel ? "startTime>" : "start-time>") + q(id.start_time) + "</" + P +
      (st.camel ? "startTime>" : "start-time>"));
  if (st.genesys) {
    d.l("    <" + P + "extensiondata>");
    d.l("      <genesys:GenesysConversationID xmlns:genesys=\"urn:genesys:cloud:recording\">" +
        q(id.conversation_id) + "</genesys:GenesysConversationID>");
    d.l("      <genesys:GenesysEdgeID xmlns:genesys=\"urn:genesys:cloud:recording\">siprec-src</genesys:GenesysEdgeID>");
    d.l("    </" + P + "extensiondata>");
  } else if (st.camel) {
    d.l("    <" + P + "extensionData>");
    d.l("      <avaya:ConversationID xmlns:avaya=\"http://avaya.com/siprec\">" + q(id.conversation_id) +
        "</avaya:ConversationID>");
    d.l("    </" + P + "extensionData>");
  }
  d.l("  </" + P + "session>");
  rfc_participant(d, st, id.caller, "customer");
  rfc_participant(d, st, id.agent, "agent");
  if (ps.transferred) rfc_participant(d, st, id.agent2, "agent");
  if (ps.supervisor_joined) rfc_participant(d, st, id.supervisor, "supervisor");
  for (int i = 0; i < 2; ++i) {
    d.l("  <" + P + "stream stream_id=\"" + (st.empty_stream_ids ? "" : q(id.stream_ids[i])) +
        "\" session_id=\"" + q(id.session_id) + "\">");
    d.l("    <" + P + "label>" + std::to_string(i + 1) + "</" + P + "label>");
    d.l("  </" + P + "stream>");
  }
  if (!st.camel) {
    d.l("  <" + P + "sessionrecordingassoc session_id=\"" + q(id.session_id) + "\">");
    d.l("    <" + P + "associate-time>" + q(id.start_time) + "</" + P + "associate-time>");
    d.l("  </" + P + "sessionrecordingassoc>");
  }
  rfc_session_assoc(d, st, id, id.caller, &id.start_time, nullptr);
  rfc_session_assoc(d, st, id, id.agent, &id.start_time, ps.transferred ? &*ps.transferred : nullptr);
  if (ps.transferred) rfc_session_assoc(d, st, id, id.agent2, &*ps.transferred, nullptr);
  if (ps.supervisor_joined) rfc_session_assoc(d, st, id, id.supervisor, &*ps.supervisor_joined, nullptr);
  rfc_stream_assoc(d, st, id, id.caller, {0}, {1});
  rfc_stream_assoc(d, st, id, id.agent, {1}, {0});
  if (ps.transferred) rfc_stream_assoc(d, st, id, id.agent2, {1}, {0});
  if (ps.supervisor_joined) rfc_stream_assoc(d, st, id, id.supervisor, {}, {0, 1});
  d.s += rfc_close(st);
  return d.s;
}

std::string rfc_join(Dialect dl, const CallIdentity& id, std::string_view time) {
  Rfc7865Style st = style_for(dl);
  Doc d;
  d.s = rfc_open(st, true);
  std::string t(time);
  rfc_participant(d, st, id.supervisor, "supervisor");
  rfc_session_assoc(d, st, id, id.supervisor, &t, nullptr);
  rfc_stream_assoc(d, st, id, id.supervisor, {}, {0, 1});
  d.s += rfc_close(st);
  return d.s;
}

std::string rfc_transfer(Dialect dl, const CallIdentity& id, std::string_view time) {
  Rfc7865Style st = style_for(dl);
  Doc d;
  d.s = rfc_open(st, true);
  std::string t(time);
  rfc_participant(d, st, id.agent2, "agent");
  rfc_session_assoc(d, st, id, id.agent, nullptr, &t);
  rfc_session_assoc(d, st, id, id.agent2, &t, nullptr);
  rfc_stream_assoc(d, st, id, id.agent2, {1}, {0});
  d.s += rfc_close(st);
  return d.s;
}

// ---- pre-RFC draft (Acme Packet, AudioCodes) --------------------------------------------------

void draft_participant(Doc& d, Dialect dl, const CallIdentity& id, const Party& p,
                       std::vector<int> send, std::vector<int> recv, const std::string* assoc,
                       const std::string* disassoc, const char* calling_party) {
  d.l("  <participant id=\"" + q(p.id) + "\" session=\"" + q(id.session_id) + "\">");
  if (!p.aor.empty()) {
    d.l("    <nameID aor=\"" + q(p.aor) + "\">");
    d.l("      <name>" + q(p.name) + "</name>");
    d.l("    </nameID>");
  }
  for (int i : send) d.l("    <send>" + q(id.stream_ids[i]) + "</send>");
  for (int i : recv) d.l("    <recv>" + q(id.stream_ids[i]) + "</recv>");
  if (assoc) d.l("    <associate-time>" + q(*assoc) + "</associate-time>");
  if (disassoc) d.l("    <disassociate-time>" + q(*disassoc) + "</disassociate-time>");
  if (dl == Dialect::kAcme && calling_party) {
    d.l("    <extensiondata xmlns:apkt=\"http://acmepacket.com/siprec/extensiondata\">");
    d.l("      <apkt:callingParty>" + std::string(calling_party) + "</apkt:callingParty>");
    d.l("    </extensiondata>");
  }
  d.l("  </participant>");
}

std::string draft_open(bool partial) {
  return std::string("<?xml version='1.0' encoding='UTF-8'?>\n"
                     "<recording xmlns='urn:ietf:params:xml:ns:recording'>\n  <datamode>") +
         (partial ? "partial" : "complete") + "</datamode>\n";
}

std::string draft_complete(Dialect dl, const CallIdentity& id, const ParticipantState& ps) {
  Doc d;
  d.s = draft_open(false);
  if (dl == Dialect::kAudioCodes) {
    d.l("  <group id=\"" + q(id.group_id) + "\">");
    d.l("    <associate-time>" + q(id.start_time) + "</associate-time>");
    d.l("  </group>");
  }
  d.l("  <session id=\"" + q(id.session_id) + "\">");
  if (dl == Dialect::kAudioCodes) {
    d.l("    <group-ref>" + q(id.group_id) + "</group-ref>");
    d.l("    <sipSessionID>" + q(id.sip_session_id) + "</sipSessionID>");
    d.l("    <start-time>" + q(id.start_time) + "</start-time>");
    d.l("    <extensiondata xmlns:ac=\"urn:audiocodes:siprec\">");
    d.l("      <ac:CallID>" + q(id.recorded_call_id) + "</ac:CallID>");
    d.l("      <ac:ConversationID>" + q(id.conversation_id) + "</ac:ConversationID>");
    d.l("    </extensiondata>");
  } else {
    d.l("    <associate-time>" + q(id.start_time) + "</associate-time>");
    d.l("    <extensiondata xmlns:apkt=\"http://acmepacket.com/siprec/extensiondata\">");
    d.l("      <apkt:ucid>" + q(id.recorded_call_id.substr(0, 22)) + "</apkt:ucid>");
    d.l("      <apkt:callerOrig>true</apkt:callerOrig>");
    d.l("      <apkt:ConversationID>" + q(id.conversation_id) + "</apkt:ConversationID>");
    d.l("    </extensiondata>");
  }
  d.l("  </session>");
  const std::string* tr = ps.transferred ? &*ps.transferred : nullptr;
  draft_participant(d, dl, id, id.caller, {0}, {1}, &id.start_time, nullptr, "true");
  draft_participant(d, dl, id, id.agent, {1}, {0}, &id.start_time, tr, "false");
  if (tr) draft_participant(d, dl, id, id.agent2, {1}, {0}, tr, nullptr, "false");
  if (ps.supervisor_joined)
    draft_participant(d, dl, id, id.supervisor, {}, {0, 1}, &*ps.supervisor_joined, nullptr, nullptr);
  for (int i = 0; i < 2; ++i) {
    d.l("  <stream id=\"" + q(id.stream_ids[i]) + "\" session=\"" + q(id.session_id) + "\">");
    d.l("    <label>" + std::to_string(i + 1) + "</label>");
    if (dl == Dialect::kAcme) d.l("    <mode>separate</mode>");
    d.l("  </stream>");
  }
  d.l("</recording>");
  return d.s;
}

std::string draft_join(Dialect dl, const CallIdentity& id, std::string_view time) {
  Doc d;
  d.s = draft_open(true);
  std::string t(time);
  draft_participant(d, dl, id, id.supervisor, {}, {0, 1}, &t, nullptr, nullptr);
  d.l("</recording>");
  return d.s;
}

std::string draft_transfer(Dialect dl, const CallIdentity& id, std::string_view time) {
  Doc d;
  d.s = draft_open(true);
  std::string t(time);
  Party leaving{id.agent.id, "", ""};  // only the id and the time it left
  draft_participant(d, dl, id, leaving, {}, {}, nullptr, &t, nullptr);
  draft_participant(d, dl, id, id.agent2, {1}, {0}, &t, nullptr, "false");
  d.l("</recording>");
  return d.s;
}

// ---- legacy <recording_metadata> with participants and streams nested in the session -----------

void legacy_participant(Doc& d, const CallIdentity& id, const Party& p, std::vector<int> send,
                    std::vector<int> recv, const std::string* assoc, const std::string* disassoc) {
  d.l("    <participant id=\"" + q(p.id) + "\">");
  if (!p.aor.empty()) {
    d.l("      <aor>" + q(p.aor) + "</aor>");
    d.l("      <name>" + q(p.name) + "</name>");
  }
  for (int i : send) d.l("      <send>" + q(id.stream_ids[i]) + "</send>");
  for (int i : recv) d.l("      <recv>" + q(id.stream_ids[i]) + "</recv>");
  if (assoc) d.l("      <associate-time>" + q(*assoc) + "</associate-time>");
  if (disassoc) d.l("      <disassociate-time>" + q(*disassoc) + "</disassociate-time>");
  d.l("    </participant>");
}

std::string legacy_open(bool partial) {
  return std::string("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<recording_metadata xmlns=\"urn:ietf:params:xml:ns:siprec\">\n  <dataMode>") +
         (partial ? "partial" : "complete") + "</dataMode>\n";
}

std::string legacy_complete(const CallIdentity& id, const ParticipantState& ps) {
  Doc d;
  d.s = legacy_open(false);
  d.l("  <group id=\"" + q(id.group_id) + "\">");
  d.l("    <associate-time>" + q(id.start_time) + "</associate-time>");
  d.l("  </group>");
  d.l("  <session id=\"" + q(id.session_id) + "\">");
  d.l("    <group-ref>" + q(id.group_id) + "</group-ref>");
  d.l("    <start-time>" + q(id.start_time) + "</start-time>");
  d.l("    <ExtensionData>");
  d.l("      <bw:broadWorksRecordingMetadata xmlns:bw=\"http://schema.broadsoft.com/recordingMetadata\">");
  d.l("        <bw:serviceProviderID>siprec-src</bw:serviceProviderID>");
  d.l("        <bw:userID>" + q(id.agent.aor.substr(4)) + "</bw:userID>");
  d.l("        <bw:callID>" + q(id.recorded_call_id) + "</bw:callID>");
  d.l("        <bw:ConversationID>" + q(id.conversation_id) + "</bw:ConversationID>");
  d.l("        <bw:callType>Network</bw:callType>");
  d.l("      </bw:broadWorksRecordingMetadata>");
  d.l("    </ExtensionData>");
  const std::string* tr = ps.transferred ? &*ps.transferred : nullptr;
  legacy_participant(d, id, id.caller, {0}, {1}, &id.start_time, nullptr);
  legacy_participant(d, id, id.agent, {1}, {0}, &id.start_time, tr);
  if (tr) legacy_participant(d, id, id.agent2, {1}, {0}, tr, nullptr);
  if (ps.supervisor_joined)
    legacy_participant(d, id, id.supervisor, {}, {0, 1}, &*ps.supervisor_joined, nullptr);
  for (int i = 0; i < 2; ++i) {
    d.l("    <stream id=\"" + q(id.stream_ids[i]) + "\">");
    d.l("      <label>" + std::to_string(i + 1) + "</label>");
    d.l("    </stream>");
  }
  d.l("  </session>");
  d.l("</recording_metadata>");
  return d.s;
}

std::string legacy_partial(const CallIdentity& id, std::string_view time, bool transfer) {
  Doc d;
  d.s = legacy_open(true);
  std::string t(time);
  d.l("  <session id=\"" + q(id.session_id) + "\">");
  if (transfer) {
    legacy_participant(d, id, Party{id.agent.id, "", ""}, {}, {}, nullptr, &t);
    legacy_participant(d, id, id.agent2, {1}, {0}, &t, nullptr);
  } else {
    legacy_participant(d, id, id.supervisor, {}, {0, 1}, &t, nullptr);
  }
  d.l("  </session>");
  d.l("</recording_metadata>");
  return d.s;
}

// ---- BroadWorks / Webex Calling <recording_metadata> -------------------------------------------
// As a BroadWorks AS sends it: flat elements linked by id/session=/group= attributes,
// urn:uuid ids, each participant's stream as <send><id>...</id></send> (no <recv>), and the
// BroadWorks block as a root <extensiondata parent="SESSION-ID">.

// `recv` is written only for a listener that sends nothing (a supervisor): BroadWorks leaves
// out <recv> for the parties of the call.
void bw_participant(Doc& d, const CallIdentity& id, const Party& p, std::vector<int> send, std::vector<int> recv,
                    const std::string* assoc, const std::string* disassoc) {
  d.l("  <participant id=\"" + q(p.id) + "\" session=\"" + q(id.session_id) + "\">");
  if (!p.aor.empty()) d.l("    <aor>" + q(p.aor) + "</aor>");
  for (const auto& [el, ids] : {std::pair{"send", send}, std::pair{"recv", recv}}) {
    if (ids.empty()) continue;
    d.l(std::string("    <") + el + ">");
    for (int i : ids) d.l("      <id>" + q(id.stream_ids[i]) + "</id>");
    d.l(std::string("    </") + el + ">");
  }
  if (assoc) d.l("    <associate-time>" + q(*assoc) + "</associate-time>");
  if (disassoc) d.l("    <disassociate-time>" + q(*disassoc) + "</disassociate-time>");
  d.l("  </participant>");
}

std::string bw_complete(const CallIdentity& id, const ParticipantState& ps) {
  Doc d;
  d.s = legacy_open(false);
  d.l("  <recording id=\"" + q(id.group_id) + "-rec\"><requestor>SRC</requestor><type>selective</type></recording>");
  d.l("  <group id=\"" + q(id.group_id) + "\" recording=\"" + q(id.group_id) + "-rec\">");
  d.l("    <initiator>" + q(id.caller.aor) + "</initiator>");
  d.l("  </group>");
  d.l("  <session id=\"" + q(id.session_id) + "\" group=\"" + q(id.group_id) + "\">");
  d.l("    <start-time>" + q(id.start_time) + "</start-time>");
  d.l("  </session>");
  const std::string* tr = ps.transferred ? &*ps.transferred : nullptr;
  bw_participant(d, id, id.caller, {0}, {}, &id.start_time, nullptr);
  bw_participant(d, id, id.agent, {1}, {}, &id.start_time, tr);
  if (tr) bw_participant(d, id, id.agent2, {1}, {}, tr, nullptr);
  if (ps.supervisor_joined) bw_participant(d, id, id.supervisor, {}, {0, 1}, &*ps.supervisor_joined, nullptr);
  for (int i = 0; i < 2; ++i) {
    d.l("  <stream id=\"" + q(id.stream_ids[i]) + "\" session=\"" + q(id.session_id) + "\">");
    d.l("    <label>" + std::to_string(i + 1) + "</label>");
    d.l("    <mode>separate</mode>");
    d.l("  </stream>");
  }
  d.l("  <extensiondata id=\"" + q(id.session_id) + "-ext\" parent=\"" + q(id.session_id) + "\">");
  d.l("    <broadWorksRecordingMetadata xmlns=\"http://schema.broadsoft.com/broadworksCallRecording\" version=\"3.0\">");
  d.l("      <serviceProviderID>siprec-src</serviceProviderID>");
  d.l("      <userID>" + q(id.agent.aor.substr(4)) + "</userID>");
  d.l("      <callID>" + q(id.recorded_call_id) + "</callID>");
  d.l("      <ConversationID>" + q(id.conversation_id) + "</ConversationID>");
  d.l("      <callType><termCall><callingPartyNumber>" + q(id.caller.aor) +
      "</callingPartyNumber></termCall></callType>");
  d.l("    </broadWorksRecordingMetadata>");
  d.l("  </extensiondata>");
  d.l("</recording_metadata>");
  return d.s;
}

std::string bw_partial(const CallIdentity& id, std::string_view time, bool transfer) {
  Doc d;
  d.s = legacy_open(true);
  std::string t(time);
  if (transfer) {
    bw_participant(d, id, Party{id.agent.id, "", ""}, {}, {}, nullptr, &t);
    bw_participant(d, id, id.agent2, {1}, {}, &t, nullptr);
  } else {
    bw_participant(d, id, id.supervisor, {}, {0, 1}, &t, nullptr);
  }
  d.l("</recording_metadata>");
  return d.s;
}

}  // namespace

common::Result<Dialect> parse_dialect(std::string_view name) {
  for (const auto& [n, d] : kNames)
    if (n == name) return d;
  return common::make_error("dialect.unknown",
                            "unknown dialect '" + std::string(name) +
                                "' (rfc7865, acme, audiocodes, broadworks, legacy, ribbon, avaya, cisco)");
}

std::string_view dialect_name(Dialect d) {
  for (const auto& [n, k] : kNames)
    if (k == d) return n;
  return "?";
}

std::vector<Dialect> all_dialects() {
  return {Dialect::kRfc7865, Dialect::kAcme,  Dialect::kAudioCodes, Dialect::kBroadWorks,
          Dialect::kLegacy,  Dialect::kRibbon, Dialect::kAvaya,     Dialect::kCisco};
}

CallIdentity make_identity(Dialect d, std::uint64_t index, std::string_view start_time) {
  CallIdentity id;
  id.conversation_id = common::uuid_v4();
  id.recorded_call_id = hex32() + "@carrier.example.net";
  id.sip_session_id = hex32() + ";remote=" + hex32();
  id.group_id = opaque_id();
  id.session_id = opaque_id();
  id.stream_ids[0] = opaque_id();
  id.stream_ids[1] = opaque_id();
  id.start_time = std::string(start_time);
  char num[32];
  std::snprintf(num, sizeof num, "+1555%07llu", static_cast<unsigned long long>(index % 10000000));
  std::string n = std::to_string(index);
  bool no_scheme = d == Dialect::kAudioCodes;
  std::string sip = no_scheme ? "" : "sip:";
  id.caller = {opaque_id(), sip + num + "@carrier.example.net", std::string("Caller ") + num};
  id.agent = {opaque_id(), sip + "agent-" + n + "@cc.example.com", "Agent " + n};
  id.agent2 = {opaque_id(), sip + "agent-" + n + "-b@cc.example.com", "Agent " + n + " B"};
  id.supervisor = {opaque_id(), sip + "supervisor-" + n + "@cc.example.com", "Supervisor " + n};
  if (d == Dialect::kBroadWorks) {
    // BroadWorks ids are URN UUIDs.
    for (std::string* s : {&id.group_id, &id.session_id, &id.stream_ids[0], &id.stream_ids[1], &id.caller.id,
                           &id.agent.id, &id.agent2.id, &id.supervisor.id})
      *s = "urn:uuid:" + common::uuid_v4();
  }
  if (d == Dialect::kAudioCodes) {
    // AudioCodes uses the user part as the participant id.
    id.caller.id = num;
    id.agent.id = "agent-" + n;
    id.agent2.id = "agent-" + n + "-b";
    id.supervisor.id = "supervisor-" + n;
  }
  return id;
}

std::string render_complete(Dialect d, const CallIdentity& id, const ParticipantState& st) {
  switch (d) {
    case Dialect::kRfc7865:
    case Dialect::kRibbon:
    case Dialect::kAvaya: return rfc_complete(d, id, st);
    case Dialect::kAcme:
    case Dialect::kAudioCodes: return draft_complete(d, id, st);
    case Dialect::kBroadWorks: return bw_complete(id, st);
    case Dialect::kLegacy: return legacy_complete(id, st);
    case Dialect::kCisco: return {};
  }
  return {};
}

std::string render_join(Dialect d, const CallIdentity& id, std::string_view time) {
  switch (d) {
    case Dialect::kRfc7865:
    case Dialect::kRibbon:
    case Dialect::kAvaya: return rfc_join(d, id, time);
    case Dialect::kAcme:
    case Dialect::kAudioCodes: return draft_join(d, id, time);
    case Dialect::kBroadWorks: return bw_partial(id, time, false);
    case Dialect::kLegacy: return legacy_partial(id, time, false);
    case Dialect::kCisco: return {};
  }
  return {};
}

std::string render_transfer(Dialect d, const CallIdentity& id, std::string_view time) {
  switch (d) {
    case Dialect::kRfc7865:
    case Dialect::kRibbon:
    case Dialect::kAvaya: return rfc_transfer(d, id, time);
    case Dialect::kAcme:
    case Dialect::kAudioCodes: return draft_transfer(d, id, time);
    case Dialect::kBroadWorks: return bw_partial(id, time, true);
    case Dialect::kLegacy: return legacy_partial(id, time, true);
    case Dialect::kCisco: return {};
  }
  return {};
}

sip::HeaderList dialect_headers(Dialect d, const CallIdentity& id) {
  sip::HeaderList h;
  h.emplace_back("X-GenesysConversationID", id.conversation_id);
  if (d == Dialect::kCisco) {
    h.emplace_back("X-Cisco-Recording-Participant",
                   "\"" + id.caller.name + "\" <" + id.caller.aor + ">;media-index=\"1\"");
    h.emplace_back("X-Cisco-Recording-Participant",
                   "\"" + id.agent.name + "\" <" + id.agent.aor + ">;media-index=\"2\"");
  }
  return h;
}

sip::HeaderList transfer_headers(Dialect d, const CallIdentity& id) {
  sip::HeaderList h;
  if (d == Dialect::kCisco) {
    h.emplace_back("X-Cisco-Recording-Participant",
                   "\"" + id.caller.name + "\" <" + id.caller.aor + ">;media-index=\"1\"");
    h.emplace_back("X-Cisco-Recording-Participant",
                   "\"" + id.agent2.name + "\" <" + id.agent2.aor + ">;media-index=\"2\"");
  }
  return h;
}

}  // namespace sgw::siprec_src
