# Timeline tests (included from test/recording/CMakeLists.txt).
sgw_test(timeline_tests SOURCES timeline_test.cc DEPS sgw_timeline)
