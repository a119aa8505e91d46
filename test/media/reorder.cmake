# Reorder buffer tests (included from test/media/CMakeLists.txt).
sgw_test(reorder_tests SOURCES reorder_buffer_test.cc DEPS sgw_reorder)
