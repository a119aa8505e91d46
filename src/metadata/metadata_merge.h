// Applying a metadata update (re-INVITE / UPDATE body) to the metadata already known.
//
// RFC 7865 §6.1: a `complete` document replaces everything; a `partial` one carries only what
// changed. merge() matches groups, sessions, participants, streams and participant-session
// associations by id (streams without an id by label), overwrites fields the update sets, adds
// what is new, and never forgets: a participant that left keeps its entry with a
// disassociate_time; send/recv stream lists are unions. Extensions are appended unless an
// identical one is already there.
//
// Thread-safety: a pure function. The result keeps base's dialect and data_mode.
#pragma once

#include "metadata/recording_metadata.h"

namespace sgw::metadata {

RecordingMetadata merge(const RecordingMetadata& base, const RecordingMetadata& update);

}  // namespace sgw::metadata
