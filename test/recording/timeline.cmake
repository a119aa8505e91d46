# Timeline tests (included from test/recording/CMakeLists.txt).
sgw_test(timeline_tests SOURCES timeline_test.cc DEPS sgw_timeline)
# A 30 h call through the finaliser (streamed timeline, docs/timeline.md "Streaming"): its own
# executable so that its peak-RSS measurement sees nothing else.
# About 40 s of CPU (FLAC-encoding 2 x 30 h): a longer timeout than the default.
add_executable(finalizer_long_call_tests finalizer_long_call_test.cc)
target_link_libraries(finalizer_long_call_tests PRIVATE sgw_recording GTest::gtest_main sgw_warnings)
target_include_directories(finalizer_long_call_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/..)
gtest_discover_tests(finalizer_long_call_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 900)
