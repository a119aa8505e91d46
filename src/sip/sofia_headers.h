// Header text between sofia's parsed messages and our HeaderList / Request,
// shared by Endpoint and ClientEndpoint. Internal to src/sip. Include it after a .cc's
// sofia "magic" defines (it pulls in sofia's message types).
#pragma once

#include <sofia-sip/msg_types.h>
#include <sofia-sip/sip.h>

#include <string>

#include "sip/sip_message.h"

namespace sgw::sip::detail {

// Every header after `first` (the request or status line), in arrival order,
// as name and value text; an unparsable or over-long value comes out empty.
HeaderList collect_headers(msg_header_t const* first);

// The request line, Call-ID, CSeq, every header and the body of a parsed
// request; the transport fields are the caller's (they need the NTA agent).
Request request_from_sip(sip_t const* sip);

// "Name: value\r\n" lines for SIPTAG_HEADER_STR.
std::string build_headers(const HeaderList& headers);

}  // namespace sgw::sip::detail
