# tests for recording output (audio writer, channel layout, recording JSON)
sgw_test(recording_output_tests
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/audio_writer_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/channel_layout_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/recording_json_test.cc
  DEPS sgw_recording_output)
